package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/schollz/progressbar/v3"

	"github.com/greenpoints/greenpoints/internal/config"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/issuer/labels"
	"github.com/greenpoints/greenpoints/issuer/pipeline"
)

const registrySynopsis = `Imports the China Energy Label registry (appliance models with grade and
label value) from a CSV file into the database; docs/partners.md gives the
columns. The whole file is validated first: any invalid line rejects it with a
per-line report and nothing is imported. Re-importing updates entries.

  greenpoints registry import --database-url URL FILE.csv`

func runRegistry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "import" {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
			fmt.Fprintf(stdout, "Usage: greenpoints registry import [flags] FILE\n\n%s\n", registrySynopsis)
			return nil
		}
		fmt.Fprintf(stderr, "Usage: greenpoints registry import [flags] FILE\n\n%s\n", registrySynopsis)
		return errUsage
	}
	fs := newFlagSet("registry import", registrySynopsis, stderr)
	var url string
	b := config.NewBinder(fs)
	b.Secret(&url, "database-url", "DATABASE_URL", "", "PostgreSQL URL")
	if err := parseFlags(b, args[1:], stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 || url == "" {
		fmt.Fprintln(stderr, "greenpoints registry import: --database-url and one FILE are required")
		return errUsage
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("open registry file: %w", err)
	}
	defer f.Close()
	entries, err := labels.Parse(f, labels.Options{})
	if err != nil {
		return err
	}
	pool, err := database.Open(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := database.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	bar := progressbar.NewOptions(len(entries), progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("importing label entries"), progressbar.OptionShowCount(),
		progressbar.OptionSetVisibility(isTerminal(stderr)))
	err = pipeline.ImportLabels(ctx, pool, entries, func(done int) { _ = bar.Set(done) })
	_ = bar.Finish()
	fmt.Fprintln(stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d label registry entries\n", len(entries))
	return nil
}
