package idp

import (
	_ "embed"
	"net/http"
)

// openAPIDoc describes the admin API (/api/v1/admin/) and the self-service API
// (/api/v1/me/mfa) in OpenAPI 3.1.
//
//go:embed openapi.yaml
var openAPIDoc []byte

// handleOpenAPI serves openAPIDoc at /api/v1/openapi.yaml.
func handleOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	_, _ = w.Write(openAPIDoc)
}
