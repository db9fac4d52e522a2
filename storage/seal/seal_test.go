package seal

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpenRoundTripAndRotation(t *testing.T) {
	oldKey, newKey := NewKey(), NewKey()
	old, err := New(oldKey)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := old.Seal([]byte("signing key"), []byte("key-1"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("signing key")) {
		t.Fatal("plaintext visible in sealed output")
	}
	rotated, err := New(newKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rotated.Open(sealed, []byte("key-1"))
	if err != nil || string(got) != "signing key" {
		t.Fatalf("Open after rotation = %q, %v", got, err)
	}
	if _, err := rotated.Open(sealed, []byte("key-2")); err == nil {
		t.Fatal("Open with wrong aad succeeded")
	}
	onlyNew, _ := New(newKey)
	if _, err := onlyNew.Open(sealed, []byte("key-1")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Open with unknown key: err = %v, want ErrUnknownKey", err)
	}
	if rotated.DeriveKey("a") == rotated.DeriveKey("b") {
		t.Fatal("derived keys for different purposes are equal")
	}
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"std 32 bytes", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", true},
		{"raw url", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", true},
		{"too short", "AAECAw==", false},
		{"not base64", "!!!", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKey(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseKey(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}

// FuzzOpen feeds arbitrary ciphertexts to Open: it must never panic and never accept
// anything Seal did not produce.
func FuzzOpen(f *testing.F) {
	s, err := New(NewKey())
	if err != nil {
		f.Fatal(err)
	}
	good, _ := s.Seal([]byte("x"), nil)
	f.Add(good)
	f.Add([]byte("abc.def"))
	f.Add([]byte("."))
	f.Add([]byte(s.CurrentKeyID() + ".AAAA"))
	f.Fuzz(func(t *testing.T, in []byte) {
		pt, err := s.Open(in, nil)
		if err == nil && !bytes.Equal(in, good) && string(pt) != "x" {
			t.Fatalf("Open accepted forged input %q", in)
		}
	})
}

// FuzzParseKey: any accepted key is exactly KeySize bytes.
func FuzzParseKey(f *testing.F) {
	f.Add("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	f.Add("")
	f.Fuzz(func(t *testing.T, in string) {
		if k, err := ParseKey(in); err == nil && len(k) != KeySize {
			t.Fatalf("ParseKey(%q) returned %d bytes", in, len(k))
		}
	})
}
