package mfa

import (
	"encoding/hex"
	"strings"

	"github.com/go-webauthn/webauthn/protocol"
)

// Naming a credential the person did not name. The AAGUID an authenticator reports at
// registration (in attestation "none" too, for most passkey providers) identifies its
// make; these are the well-known ones from the passkey providers' published lists. It is
// a label for people to tell their passkeys apart, never used for a security decision.
var knownAAGUIDs = map[string]string{
	"fbfc3007-154e-4ecc-8c0b-6e020557d7bd": "iCloud Keychain",
	"dd4ec289-e01d-41c9-bb89-70fa845d4bf2": "iCloud Keychain (managed)",
	"ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4": "Google Password Manager",
	"adce0002-35bc-c60a-648b-0b25f1f05503": "Chrome on Mac",
	"b5397666-4885-aa6b-cebf-e52262a439a2": "Chromium browser",
	"08987058-cadc-4b81-b6e1-30de50dcbe96": "Windows Hello",
	"9ddd1817-af5a-4672-a2b9-3e3dd95000a9": "Windows Hello",
	"6028b017-b1d4-4c02-b4b3-afcdafc96bb2": "Windows Hello",
	"bada5566-a7aa-401f-bd96-45619a55120d": "1Password",
	"d548826e-79b4-db40-a3d8-11116f7e8349": "Bitwarden",
	"531126d6-e717-415c-9320-3d9aa6981239": "Dashlane",
	"50726f74-6f6e-5061-7373-50726f746f6e": "Proton Pass",
	"fdb141b2-5d84-443e-8a35-4698c205a502": "KeePassXC",
	"53414d53-554e-4700-0000-000000000000": "Samsung Pass",
	"cb69481e-8ff7-4039-93ec-0a2729a154a8": "YubiKey 5",
	"ee882879-721c-4913-9775-3dfcce97072a": "YubiKey 5",
	"fa2b99dc-9e39-4257-8f92-4a30d23c4118": "YubiKey 5",
	"2fc0579f-8113-47ea-b116-bb5a8db9202a": "YubiKey 5",
	"c5ef55ff-ad9a-4b9f-b580-adebafe026d0": "YubiKey 5",
	"73bb0cd4-e502-49b8-9c6f-b59445bf720b": "YubiKey 5 FIPS",
}

// aaguidName returns the name of the authenticator with that AAGUID, or "".
func aaguidName(aaguid []byte) string {
	if len(aaguid) != 16 {
		return ""
	}
	h := hex.EncodeToString(aaguid)
	return knownAAGUIDs[h[0:8]+"-"+h[8:12]+"-"+h[12:16]+"-"+h[16:20]+"-"+h[20:32]]
}

// credentialName names a new credential: after its authenticator when the AAGUID is a
// known one, else after the browser it was added in ("Chrome on Linux"); a
// credential the browser reports as not discoverable (credProps rk=false) is a security
// key, not a passkey.
func credentialName(aaguid []byte, props *protocol.CredentialPropertiesOutput, device string) string {
	if name := aaguidName(aaguid); name != "" {
		return name
	}
	notDiscoverable := props != nil && props.RK != nil && !*props.RK
	switch {
	case notDiscoverable:
		return defaultKeyName
	default:
		return strings.TrimSpace(device)
	}
}
