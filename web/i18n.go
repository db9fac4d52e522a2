package web

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"golang.org/x/text/language"
)

// Languages. Page texts are written in English in the templates and the Go code, and the
// English text is the message id (gettext style): {{t "Sign in"}} in a template, or
// Translate(lang, "Sign in") in Go. Each other language is one JSON file in locales/,
// named by its BCP 47 tag (de.json), mapping English ids to translations. A text without
// a translation is shown in English, so a new page works before it is translated; a test
// (TestCatalogueComplete) fails until every id has one.

//go:embed locales/*.json
var localeFS embed.FS

// English is the language of the message ids and the fallback.
var English = language.English

// catalogue holds every language's translations, read once at start-up.
type catalogue struct {
	tags    []language.Tag // English first
	msgs    map[language.Tag]map[string]string
	matcher language.Matcher
}

var cat = mustLoadCatalogue(localeFS)

func mustLoadCatalogue(fsys fs.FS) *catalogue {
	c, err := loadCatalogue(fsys)
	if err != nil {
		panic(err) // the catalogue is embedded: a broken file is a build error
	}
	return c
}

func loadCatalogue(fsys fs.FS) (*catalogue, error) {
	c := &catalogue{tags: []language.Tag{English}, msgs: map[language.Tag]map[string]string{}}
	files, err := fs.Glob(fsys, "locales/*.json")
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	for _, f := range files {
		tag, err := language.Parse(strings.TrimSuffix(path.Base(f), ".json"))
		if err != nil {
			return nil, fmt.Errorf("catalogue %s: file name is not a language tag: %w", f, err)
		}
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("catalogue %s: %w", f, err)
		}
		if tag != English {
			c.tags = append(c.tags, tag)
		}
		c.msgs[tag] = m
	}
	c.matcher = language.NewMatcher(c.tags)
	return c, nil
}

// Languages returns the languages pages are available in, English first (for the
// discovery document's ui_locales_supported).
func Languages() []language.Tag { return slices.Clone(cat.tags) }

// MatchLanguage chooses the language of a page: the first of the OIDC ui_locales
// (space-separated BCP 47 tags, in order of preference) that a supported language
// matches, else the best match of the Accept-Language header, else English.
func MatchLanguage(uiLocales []string, acceptLanguage string) language.Tag {
	var want []language.Tag
	for _, l := range uiLocales {
		for _, f := range strings.Fields(l) {
			if t, err := language.Parse(f); err == nil {
				want = append(want, t)
			}
		}
	}
	for _, t := range want {
		// One by one: the person's first choice that we have wins, whatever the order
		// of our own list.
		if _, i, conf := cat.matcher.Match(t); conf != language.No {
			return cat.tags[i]
		}
	}
	if acceptLanguage != "" {
		if tags, _, err := language.ParseAcceptLanguage(acceptLanguage); err == nil && len(tags) > 0 {
			if _, i, conf := cat.matcher.Match(tags...); conf != language.No {
				return cat.tags[i]
			}
		}
	}
	return English
}

// Translate returns the text of message id in lang, formatted with args (fmt verbs, so
// a translation can reorder them: %[2]s). An id without a translation, or a text that is
// not an id (already translated, or typed by a person), is used as it is.
func Translate(lang language.Tag, id string, args ...any) string {
	s := id
	if m := cat.msgs[lang]; m != nil {
		if tr, ok := m[id]; ok && tr != "" {
			s = tr
		}
	}
	if len(args) == 0 {
		return s
	}
	return fmt.Sprintf(s, args...)
}

// N marks a Go string as a message id for the catalogue without translating it (the
// page's template translates it with {{t .Field}}); the completeness test collects its
// argument.
func N(id string) string { return id }

// Catalogue returns the translations of lang (id to text), for tests and tools.
func Catalogue(lang language.Tag) map[string]string {
	out := map[string]string{}
	for k, v := range cat.msgs[lang] {
		out[k] = v
	}
	return out
}
