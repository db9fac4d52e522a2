package mfa

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// The refusals of PhonePolicy.Normalize, safe to show.
const (
	msgPhoneInvalid   = "That is not a valid phone number. Enter it with the country code, e.g. +44 7400 123456."
	msgPhoneNotMobile = "That number cannot receive text messages (it is not a mobile number)."
	msgPhoneCountry   = "Phone numbers from that country are not accepted here."
)

// PhonePolicy decides which phone numbers may receive SMS codes.
type PhonePolicy struct {
	// DefaultRegion is the ISO 3166-1 region (e.g. "GB") of numbers typed without
	// +country code; when empty, numbers must start with + and the country code.
	DefaultRegion string
	// AllowedCountryCodes lists the country calling codes accepted (e.g. 44, 1); empty
	// accepts every country.
	AllowedCountryCodes []int
}

// Normalize parses a number as a person typed it (spaces, dashes and parentheses are
// fine) and returns it in E.164 form (+447400123456). It refuses, with an *InputError,
// numbers that are invalid, that cannot receive text messages (landlines) and numbers of
// countries the policy does not accept.
func (p PhonePolicy) Normalize(input string) (string, error) {
	input = strings.TrimSpace(input)
	if input == "" {
		return "", &InputError{Message: msgPhoneInvalid}
	}
	num, err := phonenumbers.Parse(input, strings.ToUpper(strings.TrimSpace(p.DefaultRegion)))
	if err != nil || !phonenumbers.IsValidNumber(num) || num.GetExtension() != "" {
		return "", &InputError{Message: msgPhoneInvalid}
	}
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
	default:
		return "", &InputError{Message: msgPhoneNotMobile}
	}
	if len(p.AllowedCountryCodes) > 0 && !slices.Contains(p.AllowedCountryCodes, int(num.GetCountryCode())) {
		return "", &InputError{Message: msgPhoneCountry}
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// maskPhone shows the country code and the last four digits of an E.164 number:
// +44 ••• ••• 3456.
func maskPhone(e164 string) string {
	digits := strings.TrimPrefix(e164, "+")
	last := digits
	if len(last) > 4 {
		last = last[len(last)-4:]
	}
	num, err := phonenumbers.Parse(e164, "")
	if err != nil || num.GetCountryCode() == 0 {
		return "••• ••• " + last
	}
	return fmt.Sprintf("+%d ••• ••• %s", num.GetCountryCode(), last)
}
