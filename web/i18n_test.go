package web

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template/parse"

	"golang.org/x/text/language"
)

// templateMessageIDs returns every literal message id of the templates: the first
// argument of each {{t "…"}} call, found in the parse trees (not by pattern), so a
// message id written in any template syntax is found.
func templateMessageIDs(t *testing.T) map[string]string {
	t.Helper()
	ids := map[string]string{}
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil || len(files) == 0 {
		t.Fatalf("templates: %v (%d files)", err, len(files))
	}
	for _, f := range files {
		b, err := fs.ReadFile(templateFS, f)
		if err != nil {
			t.Fatal(err)
		}
		trees := map[string]*parse.Tree{}
		tr := parse.New(f)
		tr.Mode = parse.SkipFuncCheck
		if _, err := tr.Parse(string(b), "{{", "}}", trees); err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		for _, tree := range trees {
			walkTemplate(tree.Root, func(args []parse.Node) {
				if len(args) >= 2 {
					if id, ok := args[0].(*parse.IdentifierNode); ok && id.Ident == "t" {
						if s, ok := args[1].(*parse.StringNode); ok {
							ids[s.Text] = f
						}
					}
				}
			})
		}
	}
	return ids
}

func walkTemplate(n parse.Node, visit func([]parse.Node)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walkTemplate(c, visit)
		}
	case *parse.ActionNode:
		walkTemplate(n.Pipe, visit)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			walkTemplate(c, visit)
		}
	case *parse.CommandNode:
		visit(n.Args)
		for _, a := range n.Args {
			walkTemplate(a, visit)
		}
	case *parse.IfNode:
		walkTemplate(n.Pipe, visit)
		walkTemplate(n.List, visit)
		walkTemplate(n.ElseList, visit)
	case *parse.RangeNode:
		walkTemplate(n.Pipe, visit)
		walkTemplate(n.List, visit)
		walkTemplate(n.ElseList, visit)
	case *parse.WithNode:
		walkTemplate(n.Pipe, visit)
		walkTemplate(n.List, visit)
		walkTemplate(n.ElseList, visit)
	case *parse.TemplateNode:
		walkTemplate(n.Pipe, visit)
	}
}

// goMessageIDs returns the message ids the Go code puts on pages, from the source of the
// packages that do (idp, mfa, consent):
//   - the literal first argument of web.N, Translate's second, s.tr's second;
//   - every literal argument of renderError (title, message), renderAccount,
//     renderAccountWith and renderEnroll (messages);
//   - constants named msg…;
//   - literal Error, Message, Title and Label fields of web page types and mfa.InputError;
//   - the values of map literals in variables named …Labels, …Notices or descriptions.
func goMessageIDs(t *testing.T) map[string]string {
	t.Helper()
	ids := map[string]string{}
	lit := func(e ast.Expr, where string) {
		if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.STRING {
			s, err := strconv.Unquote(b.Value)
			if err == nil && s != "" {
				ids[s] = where
			}
		}
	}
	for _, dir := range []string{"../idp", "../mfa", "../consent"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			fset := token.NewFileSet()
			file, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(file, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					name := ""
					switch fn := n.Fun.(type) {
					case *ast.Ident:
						name = fn.Name
					case *ast.SelectorExpr:
						name = fn.Sel.Name
					}
					switch {
					case name == "N" && len(n.Args) == 1:
						lit(n.Args[0], f)
					case (name == "Translate" || name == "tr") && len(n.Args) >= 2:
						lit(n.Args[1], f)
					case slices.Contains([]string{"renderError", "renderAccount", "renderAccountWith", "renderEnroll"}, name):
						for _, a := range n.Args {
							lit(a, f)
						}
					}
				case *ast.ValueSpec:
					for i, id := range n.Names {
						if strings.HasPrefix(id.Name, "msg") && i < len(n.Values) {
							lit(n.Values[i], f)
						}
						if (strings.HasSuffix(id.Name, "Labels") || strings.HasSuffix(id.Name, "Notices") || id.Name == "descriptions") && i < len(n.Values) {
							if cl, ok := n.Values[i].(*ast.CompositeLit); ok {
								for _, e := range cl.Elts {
									if kv, ok := e.(*ast.KeyValueExpr); ok {
										lit(kv.Value, f)
									}
								}
							}
						}
					}
				case *ast.CompositeLit:
					pageType := false
					switch ty := n.Type.(type) {
					case *ast.SelectorExpr:
						if x, ok := ty.X.(*ast.Ident); ok && (x.Name == "web" || (x.Name == "mfa" && ty.Sel.Name == "InputError")) {
							pageType = true
						}
					case *ast.Ident:
						pageType = ty.Name == "InputError" && strings.HasSuffix(dir, "mfa")
					}
					if !pageType {
						return true
					}
					for _, e := range n.Elts {
						if kv, ok := e.(*ast.KeyValueExpr); ok {
							if k, ok := kv.Key.(*ast.Ident); ok && slices.Contains([]string{"Error", "Message", "Title", "Label"}, k.Name) {
								lit(kv.Value, f)
							}
						}
					}
				}
				return true
			})
		}
	}
	return ids
}

// TestCatalogueComplete fails when a text on a page has no translation in a language of
// the catalogue, so no page silently stays in English: every {{t "…"}} of the templates
// and every message id the Go code puts on pages (see goMessageIDs).
func TestCatalogueComplete(t *testing.T) {
	ids := templateMessageIDs(t)
	if len(ids) < 100 {
		t.Fatalf("found only %d message ids in the templates: is the parse-tree walk broken?", len(ids))
	}
	goIDs := goMessageIDs(t)
	if len(goIDs) < 30 {
		t.Fatalf("found only %d message ids in Go code: is the collector broken?", len(goIDs))
	}
	for k, v := range goIDs {
		ids[k] = v
	}
	verb := regexp.MustCompile(`%(\[\d+\])?[-+# 0]*\d*(\.\d+)?[vTtbcdoOqxXUeEfFgGsp%]`)
	langs := Languages()
	if len(langs) < 2 {
		t.Fatalf("Languages() = %v: want English and at least one more", langs)
	}
	for _, lang := range langs[1:] {
		m := Catalogue(lang)
		var missing []string
		for id, where := range ids {
			tr, ok := m[id]
			if !ok || tr == "" {
				missing = append(missing, strconv.Quote(id)+" ("+where+")")
				continue
			}
			// The same number of arguments, else Sprintf prints %!(EXTRA…) or %!s(MISSING).
			if a, b := countVerbs(verb, id), countVerbs(verb, tr); a != b {
				t.Errorf("%s: %q has %d format verbs, its translation %q has %d", lang, id, a, tr, b)
			}
		}
		slices.Sort(missing)
		for _, m := range missing {
			t.Errorf("%s: no translation for %s", lang, m)
		}
	}
}

func countVerbs(re *regexp.Regexp, s string) int {
	n := 0
	for _, m := range re.FindAllString(s, -1) {
		if m != "%%" {
			n++
		}
	}
	return n
}

// TestCatalogueHasNoStaleEntries keeps the catalogue files to the ids still in use, so
// a changed English text is noticed (its old translation would linger unused).
func TestCatalogueHasNoStaleEntries(t *testing.T) {
	ids := templateMessageIDs(t)
	for k, v := range goMessageIDs(t) {
		ids[k] = v
	}
	for _, lang := range Languages()[1:] {
		for id := range Catalogue(lang) {
			if _, ok := ids[id]; !ok {
				t.Errorf("%s: catalogue entry %q is not used by any page", lang, id)
			}
		}
	}
}

func TestMatchLanguage(t *testing.T) {
	tests := []struct {
		name   string
		ui     []string
		accept string
		want   language.Tag
	}{
		{"nothing", nil, "", English},
		{"ui_locales de", []string{"de"}, "", language.German},
		{"ui_locales regional", []string{"de-CH"}, "en", language.German},
		{"ui_locales before Accept-Language", []string{"de"}, "en-GB,en;q=0.9", language.German},
		{"first supported ui_locale wins", []string{"xx", "en", "de"}, "de", English},
		{"unsupported ui_locales fall to Accept-Language", []string{"ja"}, "de-DE,de;q=0.9", language.German},
		{"Accept-Language quality", nil, "fr;q=0.9,de;q=0.8,en;q=0.1", language.German},
		{"unsupported falls back to English", []string{"ja"}, "zh-CN", English},
		{"garbage", []string{"%%%"}, ";;;q=x", English},
		{"space-separated ui_locales in one value", []string{"ja de"}, "", language.German},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MatchLanguage(tt.ui, tt.accept); got != tt.want {
				t.Errorf("MatchLanguage(%q, %q) = %v, want %v", tt.ui, tt.accept, got, tt.want)
			}
		})
	}
}

func TestTranslate(t *testing.T) {
	if got := Translate(language.German, "Sign in"); got != "Anmelden" {
		t.Errorf("Translate(de, Sign in) = %q", got)
	}
	if got := Translate(English, "Continue to %s", "App"); got != "Continue to App" {
		t.Errorf("English with args = %q", got)
	}
	if got := Translate(language.German, "not an id 100%"); got != "not an id 100%" {
		t.Errorf("unknown id without args must pass unchanged, got %q", got)
	}
}

func TestLanguagesFromFiles(t *testing.T) {
	entries, err := os.ReadDir("locales")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(Languages()), len(entries)+1; got != want {
		t.Errorf("Languages() has %d entries, want English plus one per file (%d)", got, want)
	}
}
