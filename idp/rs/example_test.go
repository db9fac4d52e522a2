package rs_test

import (
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/openidp/idp/idp/rs"
)

// An orders API that accepts the provider's access tokens. Listing orders needs the
// orders:read scope; paying needs a second factor within the last five minutes: a token
// short of that gets RFC 9470's challenge, and the client signs the person in again with
// the acr_values and max_age it names.
func ExampleVerifier_Middleware() {
	v, err := rs.NewVerifier(rs.Config{
		Issuer:   "https://id.example.com",
		Audience: "https://orders.example.com", // the resource the tokens are for
		Leeway:   30 * time.Second,
		// For opaque tokens: the API's own client credentials, for introspection.
		ClientID:     "orders-api",
		ClientSecret: "…",
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("GET /orders", v.Require(rs.RequireScope("orders:read"))(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			claims, _ := rs.FromContext(r.Context())
			fmt.Fprintf(w, "orders of %s, via %s\n", claims.Subject, claims.ClientID)
		})))
	mux.Handle("POST /payments", v.Require(
		rs.RequireScope("payments:write"),
		rs.RequireACR(rs.ACRMFA), // a phishing-resistant sign-in (phr) counts too
		rs.RequireMaxAge(5*time.Minute),
	)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})))

	// Every route needs a valid token; Middleware verifies it once, and the routes'
	// requirements are checked on the claims it found.
	_ = http.ListenAndServe(":8081", v.Middleware(mux))
}
