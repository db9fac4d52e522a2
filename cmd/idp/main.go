// Command idp runs the OpenID Connect identity provider and its operator tasks:
// serving, migrations, users, clients, signing keys and the audit trail. Run
// `idp --help` for the commands and `idp COMMAND --help` for their flags.
package main

import (
	"context"
	"os"
)

func main() {
	installDefaultLogger = true
	reexecAllowed = true
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
