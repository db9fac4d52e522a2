package idp

import (
	"net/http"

	"golang.org/x/text/language"

	"github.com/openidp/idp/web"
)

// Page languages (web/i18n.go): a page is in the first language of the sign-in's
// ui_locales that the provider has, else the best of the browser's Accept-Language,
// else English.

// lang is the language of the pages answering r.
func (s *Server) lang(r *http.Request) language.Tag {
	var ui []string
	if ri := requestInfoFrom(r.Context()); ri != nil {
		ui = ri.UILocales
	}
	return web.MatchLanguage(ui, r.Header.Get("Accept-Language"))
}

// tr translates message id (English) for the person r comes from, formatted with args.
// Use it for texts built in Go with values in them; a fixed text can stay an English
// constant that the template translates ({{t .Error}}).
func (s *Server) tr(r *http.Request, id string, args ...any) string {
	return web.Translate(s.lang(r), id, args...)
}
