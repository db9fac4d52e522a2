// Package backchannel sends OIDC Back-Channel Logout tokens to the relying parties of an SSO session that ended.
package backchannel
