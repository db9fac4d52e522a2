package idp_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// saveScreenshot writes a full-page PNG of the current page to $IDP_SCREENSHOTS/name.png
// when IDP_SCREENSHOTS is set; the docs' pictures are made this way
// (IDP_SCREENSHOTS=$PWD/docs/images go test ./idp -run Screenshot).
func saveScreenshot(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv("IDP_SCREENSHOTS")
	if dir == "" {
		return
	}
	// chromedp v0.23 returns the image from Run (the contract's text passes a pointer,
	// which this version does not accept), and quality 100 is what makes it a PNG (any
	// other quality gives a JPEG).
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
}
