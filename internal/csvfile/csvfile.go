// Package csvfile reads the CSV files partners send (bank settlement files,
// the energy label registry) whole, before anything is applied.
//
// A file is accepted or rejected as a unit: Read checks the encoding, the
// header, the column count of every record and the trailer, and collects
// every problem with its physical line into a Report; the caller adds its own
// per-row problems to the same Report and applies nothing unless it is empty.
// Line numbers are physical 1-based lines of the file as a text editor shows
// them, so a quoted field spanning lines does not shift later line numbers.
//
// Format rules common to every file:
//   - UTF-8. A leading UTF-8 byte order mark is accepted and stripped (some
//     spreadsheet exports write one); any other invalid UTF-8 rejects the
//     file, with each offending line reported.
//   - RFC 4180 quoting, comma separator, LF or CRLF line endings. Blank lines
//     are ignored.
//   - The first record is the header: the exact column names, in order.
//   - Optionally a trailer record, whose first field is a marker such as
//     "TRAILER", which must be the last record. The marker is therefore
//     reserved: no data record may start with it.
//
// Problem details never echo field values: a file with a shifted column or a
// missing header may carry a card number anywhere, and reports are logged
// and shown to partners' operators.
package csvfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/greenpoints/greenpoints/internal/apperr"
)

// Defaults for the bounds of a Spec left at zero.
const (
	DefaultMaxRecordBytes = 8 << 10
)

// utf8BOM is the UTF-8 encoding of U+FEFF.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// Spec describes one file format and its bounds.
type Spec struct {
	// Header is the exact list of column names, in order.
	Header []string
	// Trailer is the first field of the trailer record; "" means the format
	// has no trailer.
	Trailer string
	// TrailerFields is the number of fields of the trailer record, marker
	// included.
	TrailerFields int
	// MaxBytes bounds the file size; larger files fail with code TooLarge
	// before anything is parsed. Required.
	MaxBytes int64
	// MaxLines bounds the number of physical lines, header and trailer
	// included; more fail with code TooLarge. Required.
	MaxLines int
	// MaxRecordBytes bounds one record (quoted newlines included); longer
	// records are reported. Zero means DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// Record is one data record.
type Record struct {
	Line   int      // physical line the record starts on
	Fields []string // exactly len(Spec.Header) fields
}

// File is what Read found. Records holds only records with the right column
// count; the others are in the Report.
type File struct {
	Records []Record
	// Trailer is the trailer record, nil when the format has none or the file
	// lacks it (which is then in the Report).
	Trailer *Record
	// SHA256 is the hex SHA-256 of the raw bytes as received (BOM included):
	// the identity of the file for idempotent imports and the audit trail.
	SHA256 string
	// Lines is the number of physical lines.
	Lines int
	// Count is the number of data records (neither header nor trailer),
	// those in the Report included: what a trailer's count must match.
	Count int
}

// Read reads a whole file of format spec from r. Structural problems go in
// the returned Report, which the caller extends with its own checks before
// calling Report.Err. The error is non-nil only when the file could not be
// read at all: an *apperr.Error with code TooLarge (reason "file_too_large"
// or "file_too_many_lines"), or the read error of r.
func Read(r io.Reader, spec Spec) (*File, *Report, error) {
	if spec.MaxBytes <= 0 || spec.MaxLines <= 0 || len(spec.Header) == 0 {
		return nil, nil, errors.New("csvfile: Spec needs Header, MaxBytes and MaxLines")
	}
	maxRecord := spec.MaxRecordBytes
	if maxRecord <= 0 {
		maxRecord = DefaultMaxRecordBytes
	}
	data, err := io.ReadAll(io.LimitReader(r, spec.MaxBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("csvfile: read: %w", err)
	}
	if int64(len(data)) > spec.MaxBytes {
		return nil, nil, apperr.New(apperr.TooLarge, "file_too_large", "the file is larger than %d bytes", spec.MaxBytes)
	}
	sum := sha256.Sum256(data)
	f := &File{SHA256: hex.EncodeToString(sum[:]), Lines: countLines(data)}
	if f.Lines > spec.MaxLines {
		return nil, nil, apperr.New(apperr.TooLarge, "file_too_many_lines", "the file has %d lines, more than %d", f.Lines, spec.MaxLines)
	}
	rep := &Report{}
	body := bytes.TrimPrefix(data, utf8BOM)
	if !utf8.Valid(body) {
		// Nothing after a broken byte can be trusted to be the intended
		// text, so report the encoding per line and stop there.
		for i, line := range bytes.SplitAfter(body, []byte{'\n'}) {
			if !utf8.Valid(line) {
				rep.Add(i+1, "encoding", "utf8", "the line is not valid UTF-8")
			}
		}
		return f, rep, nil
	}

	cr := csv.NewReader(bytes.NewReader(body))
	cr.FieldsPerRecord = -1 // header, data and trailer differ: checked below
	cr.ReuseRecord = false
	headerSeen := false
	for {
		start := cr.InputOffset()
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				detail := pe.Err.Error()
				if pe.Line != pe.StartLine {
					detail += fmt.Sprintf(" (on line %d)", pe.Line)
				}
				rep.Add(pe.StartLine, "record", "csv_syntax", detail)
				if !headerSeen {
					// Without a header nothing else can be checked.
					return f, rep, nil
				}
				f.Count++
				continue
			}
			return nil, nil, fmt.Errorf("csvfile: parse: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if n := cr.InputOffset() - start; n > int64(maxRecord) {
			rep.Addf(line, "record", "record_too_long", "the record is %d bytes, more than %d", n, maxRecord)
			if !headerSeen {
				return f, rep, nil
			}
			f.Count++
			continue
		}
		if !headerSeen {
			headerSeen = true
			if !equal(rec, spec.Header) {
				// The detail names the expected columns only: the first
				// line may be data, and data may hold a card number.
				rep.Addf(line, "header", "header_mismatch", "the header must be %q%s",
					strings.Join(spec.Header, ","), headerDiff(rec, spec.Header))
				return f, rep, nil
			}
			continue
		}
		if spec.Trailer != "" && rec[0] == spec.Trailer {
			if f.Trailer != nil {
				rep.Addf(line, "trailer", "trailer_not_last", "a second trailer; the trailer on line %d must be the last record", f.Trailer.Line)
				continue
			}
			if len(rec) != spec.TrailerFields {
				rep.Addf(line, "trailer", "column_count", "the trailer has %d fields, want %d", len(rec), spec.TrailerFields)
			}
			f.Trailer = &Record{Line: line, Fields: rec}
			continue
		}
		f.Count++
		if f.Trailer != nil {
			rep.Addf(line, "record", "trailer_not_last", "a record after the trailer on line %d; the trailer must be the last record", f.Trailer.Line)
			continue
		}
		if len(rec) != len(spec.Header) {
			rep.Addf(line, "record", "column_count", "the record has %d fields, want %d", len(rec), len(spec.Header))
			continue
		}
		f.Records = append(f.Records, Record{Line: line, Fields: rec})
	}
	if !headerSeen {
		rep.Addf(1, "header", "header_missing", "the file is empty; the header must be %q", strings.Join(spec.Header, ","))
		return f, rep, nil
	}
	if spec.Trailer != "" && f.Trailer == nil {
		rep.Addf(max(f.Lines, 1), "trailer", "trailer_missing", "the file must end with a %s record", spec.Trailer)
	}
	if f.Trailer != nil && len(f.Trailer.Fields) != spec.TrailerFields {
		f.Trailer = nil // reported above; callers check only well-formed trailers
	}
	return f, rep, nil
}

// countLines counts physical lines: newline-terminated ones plus a last
// unterminated one.
func countLines(b []byte) int {
	n := bytes.Count(b, []byte{'\n'})
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// headerDiff says where got first differs from want, without echoing got.
func headerDiff(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("; column %d must be %q", i+1, want[i])
		}
	}
	return fmt.Sprintf("; it has %d columns, want %d", len(got), len(want))
}
