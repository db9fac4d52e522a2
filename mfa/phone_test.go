package mfa

import (
	"errors"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

func TestPhonePolicyNormalize(t *testing.T) {
	gb := PhonePolicy{DefaultRegion: "GB"}
	tests := []struct {
		name    string
		policy  PhonePolicy
		input   string
		want    string // E.164 when accepted
		wantMsg string // the InputError message when refused
	}{
		{name: "UK mobile", policy: gb, input: "+44 7400 123456", want: "+447400123456"},
		{name: "UK mobile, national form with region", policy: gb, input: "07400 123456", want: "+447400123456"},
		{name: "US mobile", input: "+1 (201) 555-0123", want: "+12015550123"},
		{name: "US mobile, region US", policy: PhonePolicy{DefaultRegion: "us"}, input: "(201) 555-0123", want: "+12015550123"},
		{name: "DE mobile", input: "+49 1512 3456789", want: "+4915123456789"},
		{name: "spaces, dashes and parentheses", input: " +44 (0) 7400-123-456 ", want: "+447400123456"},
		{name: "UK landline", policy: gb, input: "+44 20 7946 0018", wantMsg: msgPhoneNotMobile},
		{name: "UK landline, national form", policy: gb, input: "020 7946 0018", wantMsg: msgPhoneNotMobile},
		{name: "too short", input: "+44 7400", wantMsg: msgPhoneInvalid},
		{name: "not a number", input: "call me", wantMsg: msgPhoneInvalid},
		{name: "empty", input: "  ", wantMsg: msgPhoneInvalid},
		{name: "no + and no region", input: "07400 123456", wantMsg: msgPhoneInvalid},
		{name: "unknown country code", input: "+999 123 456 789", wantMsg: msgPhoneInvalid},
		{name: "extension", input: "+44 7400 123456 ext. 12", wantMsg: msgPhoneInvalid},
		{name: "allow-list accepts", policy: PhonePolicy{AllowedCountryCodes: []int{44, 353}}, input: "+44 7400 123456", want: "+447400123456"},
		{name: "allow-list refuses", policy: PhonePolicy{AllowedCountryCodes: []int{44, 353}}, input: "+49 1512 3456789", wantMsg: msgPhoneCountry},
		{name: "allow-list refuses US", policy: PhonePolicy{DefaultRegion: "GB", AllowedCountryCodes: []int{44}}, input: "+1 201 555 0123", wantMsg: msgPhoneCountry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.policy.Normalize(tt.input)
			if tt.wantMsg == "" {
				if err != nil || got != tt.want {
					t.Fatalf("Normalize(%q) = %q, %v; want %q", tt.input, got, err, tt.want)
				}
				return
			}
			var ie *InputError
			if !errors.As(err, &ie) || ie.Message != tt.wantMsg {
				t.Fatalf("Normalize(%q) = %q, %v; want InputError %q", tt.input, got, err, tt.wantMsg)
			}
			if got != "" {
				t.Errorf("refused number returned %q", got)
			}
		})
	}
}

func TestMaskPhone(t *testing.T) {
	tests := []struct{ in, want string }{
		{"+447400123456", "+44 ••• ••• 3456"},
		{"+12015550123", "+1 ••• ••• 0123"},
		{"+4915123456789", "+49 ••• ••• 6789"},
		{"12", "••• ••• 12"},
	}
	for _, tt := range tests {
		if got := maskPhone(tt.in); got != tt.want {
			t.Errorf("maskPhone(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzNormalize checks that Normalize never panics and that every number it accepts is
// an E.164 number that normalizes to itself.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		"+44 7400 123456", "07400 123456", "+1 (201) 555-0123", "+49 1512 3456789",
		"020 7946 0018", "+44 7400", "", "+", "++44", "1-800-FLOWERS", "+44 7400 123456 ext. 12",
		"tel:+44-7400-123456", "\x00", "+٤٤٧٤٠٠١٢٣٤٥٦",
	} {
		f.Add(s, "GB")
		f.Add(s, "")
	}
	f.Fuzz(func(t *testing.T, input, region string) {
		p := PhonePolicy{DefaultRegion: region}
		got, err := p.Normalize(input)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("Normalize(%q, %q): error %v is not an InputError", input, region, err)
			}
			return
		}
		again, err := PhonePolicy{}.Normalize(got)
		if err != nil || again != got {
			t.Fatalf("Normalize(%q, %q) = %q, which normalizes to %q, %v", input, region, got, again, err)
		}
		num, err := phonenumbers.Parse(got, "")
		if err != nil || phonenumbers.Format(num, phonenumbers.E164) != got {
			t.Fatalf("Normalize(%q, %q) = %q, not E.164 (%v)", input, region, got, err)
		}
	})
}
