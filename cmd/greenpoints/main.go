// Command greenpoints is the green-consumption points issuer: one binary
// with subcommands (serve, migrate, demo, version). Run `greenpoints --help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the issuer's HTTP API against a PostgreSQL database", runServe},
		{"demo", "start a throwaway PostgreSQL and a server with demo settings (no set-up needed)", runDemo},
		{"migrate", "apply the database migrations and exit", runMigrate},
		{"partner", "act as a partner: send signed requests, import settlement files", runPartner},
		{"registry", "import the energy-label registry from a CSV file", runRegistry},
		{"projection", "rebuild the read projection from the ledger", runProjection},
		{"ledger", "onboarding on the ledger: init, register-issuer, anchor-policy", runLedger},
		{"token", "print a consumer bearer token from the development issuer (demo only)", runToken},
		{"version", "print the version and exit", runVersion},
	}
}

const topUsage = `greenpoints issues green-consumption points: verified green actions
(energy-efficient appliances, public transit, ...) are quantified in grams CO2e
and issued as points on a permissioned ledger.

Usage:
  greenpoints COMMAND [flags]

Commands:
%s
Every flag can also be set by the environment variable shown in its help.
Run 'greenpoints COMMAND --help' for a command's flags.
`

func usageText() string {
	var list string
	for _, c := range commands() {
		list += fmt.Sprintf("  %-11s %s\n", c.name, c.summary)
	}
	return fmt.Sprintf(topUsage, list)
}

// errUsage marks a usage error (exit status 2); its message is already printed.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit status: 0 on
// success, 2 for a usage error, 1 for any other failure, which is printed as
// one line "greenpoints: ...".
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText())
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usageText())
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		default:
			fmt.Fprintf(stderr, "greenpoints %s: %s\n", c.name, oneLine(err.Error()))
			return 1
		}
	}
	fmt.Fprintf(stderr, "greenpoints: unknown command %q; run 'greenpoints --help' for the list\n", args[0])
	return 2
}

// oneLine folds a multi-line error (pgx lists each connection attempt on its
// own line) into the single line users and scripts expect.
func oneLine(s string) string {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	return strings.Join(fields, " ")
}

// runGroup runs the subcommand args[0] of a command group ("greenpoints
// ledger init ..."): usage on stdout for help, on stderr with errUsage when
// the subcommand is missing or unknown.
func runGroup(ctx context.Context, group, usage string, subs map[string]func(context.Context, []string, io.Writer, io.Writer) error,
	args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	if run, ok := subs[args[0]]; ok {
		return run(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "greenpoints %s: unknown subcommand %q\n\n%s", group, args[0], usage)
	return errUsage
}

// newFlagSet returns a FlagSet whose usage explains the command.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: greenpoints %s [flags]\n\n%s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses and converts flag errors to errUsage (the flag package
// has already printed the problem and the usage).
func parseFlags(p interface{ Parse([]string) error }, args []string, stderr io.Writer) error {
	if err := p.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		// An environment error has not been printed yet.
		fmt.Fprintf(stderr, "greenpoints: %v\n", err)
		return errUsage
	}
	return nil
}
