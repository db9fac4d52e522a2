package audit

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestEventTypesComplete checks that EventTypes lists every Event constant of events.go.
func TestEventTypesComplete(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "events.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Event") {
					continue
				}
				v, _ := strconv.Unquote(vs.Values[i].(*ast.BasicLit).Value)
				n++
				if !slices.Contains(EventTypes, v) {
					t.Errorf("EventTypes lacks %s (%q)", name.Name, v)
				}
			}
		}
	}
	if n != len(EventTypes) {
		t.Errorf("%d Event constants, EventTypes has %d", n, len(EventTypes))
	}
}

func TestKnownType(t *testing.T) {
	for in, want := range map[string]string{
		"login.password":      EventLoginPassword,
		"mfa.enroll":          EventMFAEnroll,
		"mfa.enrol":           EventMFAEnroll,
		"mfa.enrol.start":     EventMFAEnrollStart,
		"mfa.enrol.required":  EventMFAEnrolRequired,
		"mfa.enroll.required": EventMFAEnrolRequired,
		"nonsense":            "",
	} {
		got, ok := KnownType(in)
		if got != want || ok != (want != "") {
			t.Errorf("KnownType(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
