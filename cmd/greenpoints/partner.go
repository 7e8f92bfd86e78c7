package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/greenpoints/greenpoints/internal/app"
	"github.com/greenpoints/greenpoints/internal/config"
	"github.com/greenpoints/greenpoints/internal/partnerclient"
)

const partnerUsage = `Usage: greenpoints partner SUBCOMMAND [flags]

Acts as a partner (bank, transit operator) against a running server: every
request is signed with the partner's key per the Standard Webhooks convention.

Subcommands:
  send     send a JSON request, or the demo's sample data (--sample)
  import   upload a day's settlement CSV file

Run 'greenpoints partner SUBCOMMAND --help' for its flags.
`

func runPartner(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runGroup(ctx, "partner", partnerUsage, map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"send": runPartnerSend, "import": runPartnerImport,
	}, args, stdout, stderr)
}

// partnerFlags are the flags of every partner subcommand.
type partnerFlags struct {
	url, partner, keyFile, keysDir string
}

func (f *partnerFlags) bind(b *config.Binder) {
	b.String(&f.url, "url", "GREENPOINTS_URL", "http://127.0.0.1:8080", "base URL of the greenpoints server")
	b.String(&f.partner, "partner", "GREENPOINTS_PARTNER", "", "partner id, e.g. demo-bank")
	b.String(&f.keyFile, "key-file", "GREENPOINTS_PARTNER_KEY_FILE", "", "file holding the partner's Ed25519 private key (whsk_...) or HMAC secret (whsec_...)")
	b.String(&f.keysDir, "keys-dir", "GREENPOINTS_KEYS_DIR", "", "with --sample: the demo's key directory, where it wrote the sandbox partners' keys (<partner>.whsk)")
}

// client builds a signed client for partner with the key in file.
func (f *partnerFlags) client(partner, file string) (*partnerclient.Client, error) {
	return partnerclient.FromKeyFile(f.url, partner, file)
}

const sendSynopsis = `Sends one signed partner request and prints the response.

  greenpoints partner send --partner demo-bank --key-file KEY --route card-transactions --body req.json

or the demo's sample data, end to end (needs the demo's --keys-dir):

  greenpoints partner send --sample all --keys-dir DIR

The samples: the bank reports two appliance purchases, a metro fare with the
operator's trip id, a top-up (never a trip) and an authorised purchase; the
metro operator reports three rides; then, once the washing machine's points
are issued, the bank refunds it and the points are clawed back.`

func runPartnerSend(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("partner send", sendSynopsis, stderr)
	var f partnerFlags
	var route, bodyFile, sample string
	b := config.NewBinder(fs)
	f.bind(b)
	b.String(&route, "route", "", "card-transactions", "route under /v1/partners/{partner}/: card-transactions or trips")
	b.String(&bodyFile, "body", "", "", "JSON request body file ('-' for standard input)")
	b.String(&sample, "sample", "", "", "send the demo's sample data instead: all, cards, trips or refund")
	if err := parseFlags(b, args, stderr); err != nil {
		return err
	}
	if sample != "" {
		return sendSamples(ctx, &f, sample, stdout)
	}
	if f.partner == "" || f.keyFile == "" || bodyFile == "" {
		fmt.Fprintln(stderr, "greenpoints partner send: --partner, --key-file and --body are required (or use --sample)")
		return errUsage
	}
	var body []byte
	var err error
	if bodyFile == "-" {
		body, err = io.ReadAll(os.Stdin)
	} else {
		body, err = os.ReadFile(bodyFile)
	}
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	c, err := f.client(f.partner, f.keyFile)
	if err != nil {
		return err
	}
	resp, err := c.Post(ctx, route, "application/json", body)
	if err != nil {
		return err
	}
	return printResponse(stdout, resp)
}

func printResponse(w io.Writer, r *partnerclient.Response) error {
	var out bytes.Buffer
	if json.Indent(&out, r.Body, "", "  ") != nil {
		out.Reset()
		out.Write(r.Body)
	}
	fmt.Fprintf(w, "HTTP %d\n%s\n", r.Status, out.String())
	if r.Status/100 != 2 {
		return fmt.Errorf("the server answered HTTP %d", r.Status)
	}
	return nil
}

// sendSamples runs the demo's story against the server.
func sendSamples(ctx context.Context, f *partnerFlags, which string, w io.Writer) error {
	if f.keysDir == "" {
		return fmt.Errorf("--sample needs --keys-dir: the demo prints it")
	}
	bank, err := f.client(app.DemoBank, filepath.Join(f.keysDir, app.DemoBank+".whsk"))
	if err != nil {
		return err
	}
	metro, err := f.client(app.DemoMetro, filepath.Join(f.keysDir, app.DemoMetro+".whsk"))
	if err != nil {
		return err
	}
	now := time.Now()
	step := func(title string, c *partnerclient.Client, route string, body []byte) error {
		fmt.Fprintf(w, "\n== %s (POST /v1/partners/%s/%s)\n", title, c.Partner, route)
		r, err := c.Post(ctx, route, "application/json", body)
		if err != nil {
			return err
		}
		return printOutcomes(w, r)
	}
	if which == "all" || which == "cards" {
		if err := step("bank reports card transactions", bank, "card-transactions", app.DemoCardSample(now)); err != nil {
			return err
		}
	}
	if which == "all" || which == "trips" {
		if err := step("metro operator reports trips", metro, "trips", app.DemoTripSample(now)); err != nil {
			return err
		}
	}
	if which == "all" {
		fmt.Fprintln(w, "\n== waiting for the batcher to issue the washing machine's points")
		if err := waitStatus(ctx, bank, "card-transactions/"+app.DemoSampleTxIDs.Washer, "issued", w); err != nil {
			return err
		}
	}
	if which == "all" || which == "refund" {
		if err := step("bank reports a refund of the washing machine", bank, "card-transactions", app.DemoRefundSample(now)); err != nil {
			return err
		}
	}
	if which == "all" {
		fmt.Fprintln(w, "\n== waiting for the reversal on the ledger")
		if err := waitStatus(ctx, bank, "card-transactions/"+app.DemoSampleTxIDs.Washer, "reversed", w); err != nil {
			return err
		}
		fmt.Fprintln(w, "\n== outcomes")
		for _, id := range []string{app.DemoSampleTxIDs.Fridge, app.DemoSampleTxIDs.Washer, app.DemoSampleTxIDs.Fare} {
			if err := printStatus(ctx, bank, "card-transactions/"+id, w); err != nil {
				return err
			}
		}
		for _, id := range app.DemoSampleTrips {
			if err := printStatus(ctx, metro, "trips/"+id, w); err != nil {
				return err
			}
		}
	}
	return nil
}

// printOutcomes prints one line per event of an intake response.
func printOutcomes(w io.Writer, r *partnerclient.Response) error {
	if r.Status != 202 {
		return printResponse(w, r)
	}
	var resp struct {
		Events []struct {
			TransactionID, Status, Outcome, Reason string
			Actions                                []struct {
				Kind, Status, Reason string
				Grams, Points        int64
			}
		}
	}
	if err := json.Unmarshal(r.Body, &resp); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	for _, e := range resp.Events {
		fmt.Fprintf(w, "  %-22s %-10s -> %-9s %s\n", e.TransactionID, e.Status, e.Outcome, e.Reason)
		for _, a := range e.Actions {
			pts := fmt.Sprintf("%4d points", a.Points)
			if a.Kind == "transit" && a.Points == 0 && a.Reason == "" {
				pts = "points when the day's grant is made"
			}
			fmt.Fprintf(w, "      %-9s %-16s %7d g CO2e  %s  %s\n", a.Kind, a.Status, a.Grams, pts, a.Reason)
		}
	}
	return nil
}

type statusDoc struct {
	TransactionID string
	Actions       []struct {
		Kind, Status, Reason, LotKey, LedgerTxID string
		Grams, Points, Block                     int64
	}
}

func getStatus(ctx context.Context, c *partnerclient.Client, route string) (*statusDoc, error) {
	r, err := c.Get(ctx, route)
	if err != nil {
		return nil, err
	}
	if r.Status != 200 {
		return nil, fmt.Errorf("GET %s: HTTP %d: %s", route, r.Status, r.Body)
	}
	var s statusDoc
	if err := json.Unmarshal(r.Body, &s); err != nil {
		return nil, fmt.Errorf("decode status: %w", err)
	}
	return &s, nil
}

// waitStatus polls until every action of the transaction reaches status,
// with a spinner, for at most a minute.
func waitStatus(ctx context.Context, c *partnerclient.Client, route, status string, w io.Writer) error {
	bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("  "+status+"?"),
		progressbar.OptionSpinnerType(14), progressbar.OptionClearOnFinish(), progressbar.OptionSetVisibility(isTerminal(w)))
	defer bar.Finish()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := c.WaitActions(ctx, route, status, 200*time.Millisecond, func() { _ = bar.Add(1) }); err != nil {
		return fmt.Errorf("%w: is the server's batcher running?", err)
	}
	return nil
}

func printStatus(ctx context.Context, c *partnerclient.Client, route string, w io.Writer) error {
	s, err := getStatus(ctx, c, route)
	if err != nil {
		return err
	}
	for _, a := range s.Actions {
		fmt.Fprintf(w, "  %-22s %-9s %-9s %7d g CO2e  %4d points  block %-4d %s\n", s.TransactionID, a.Kind, a.Status, a.Grams, a.Points, a.Block, a.Reason)
	}
	return nil
}

const importSynopsis = `Uploads a day's settlement CSV file (docs/partners.md describes the format).
The server validates the whole file first: any invalid line rejects the file
with a per-line report and nothing is applied; a valid file applies
idempotently (lines received before are recognised).

  greenpoints partner import --partner demo-bank --key-file KEY --business-day 2026-11-22 FILE.csv`

func runPartnerImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("partner import", importSynopsis, stderr)
	var f partnerFlags
	var day string
	b := config.NewBinder(fs)
	f.bind(b)
	b.String(&day, "business-day", "", "", "the business day the file covers, YYYY-MM-DD (Asia/Shanghai)")
	if err := parseFlags(b, args, stderr); err != nil {
		return err
	}
	if fs.NArg() != 1 || f.partner == "" || f.keyFile == "" || day == "" {
		fmt.Fprintln(stderr, "greenpoints partner import: --partner, --key-file, --business-day and one FILE are required")
		return errUsage
	}
	body, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("read settlement file: %w", err)
	}
	c, err := f.client(f.partner, f.keyFile)
	if err != nil {
		return err
	}
	bar := progressbar.NewOptions(-1, progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(fmt.Sprintf("uploading %s (%d bytes) and waiting for validation", filepath.Base(fs.Arg(0)), len(body))),
		progressbar.OptionSpinnerType(14), progressbar.OptionClearOnFinish(), progressbar.OptionSetVisibility(isTerminal(stderr)))
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
				_ = bar.Add(1)
			}
		}
	}()
	resp, err := c.Post(ctx, "settlement-files?businessDay="+day, "text/csv", body)
	close(done)
	_ = bar.Finish()
	if err != nil {
		return err
	}
	if resp.Status != 202 {
		return printResponse(stdout, resp)
	}
	return printOutcomes(stdout, resp)
}

// isTerminal reports whether w is a terminal: spinners only make sense there
// (in a log or a pipe they are noise).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
