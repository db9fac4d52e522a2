package idp

import "context"

// requestInfo is what middleware learns about the HTTP request, carried in the context.
type requestInfo struct {
	ID               string
	IP               string
	UserAgent        string
	SessionTokenHash string // hash of the SSO session cookie, if the request carried one
	// UILocales are the ui_locales of the sign-in this request works on, once loaded
	// (gatherFlow): they choose the page language before Accept-Language.
	UILocales []string
}

type requestInfoKey struct{}

func withRequestInfo(ctx context.Context, ri *requestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, ri)
}

func requestInfoFrom(ctx context.Context) *requestInfo {
	ri, _ := ctx.Value(requestInfoKey{}).(*requestInfo)
	return ri
}

// auditRequest is the audit.Auditor's Request hook: the client address and user agent of
// the request in ctx.
func auditRequest(ctx context.Context) (ip, userAgent string) {
	if ri := requestInfoFrom(ctx); ri != nil {
		return ri.IP, ri.UserAgent
	}
	return "", ""
}
