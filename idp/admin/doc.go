// Package admin holds the operator actions the CLI and the admin API share: users, clients, policies, MFA resets, re-encryption, policy explanations and demo seeding.
package admin
