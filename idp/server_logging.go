package idp

import (
	"context"
	"log/slog"
)

// LogHandler wraps h so that every record logged with a request's context carries that
// request's id and client IP, whichever package logs it.
func LogHandler(h slog.Handler) slog.Handler { return requestLogHandler{h} }

type requestLogHandler struct{ slog.Handler }

func (h requestLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if ri := requestInfoFrom(ctx); ri != nil {
		r.AddAttrs(slog.String("request_id", ri.ID), slog.String("ip", ri.IP))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestLogHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestLogHandler) WithGroup(name string) slog.Handler {
	return requestLogHandler{h.Handler.WithGroup(name)}
}
