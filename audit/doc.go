// Package audit will provide what auditors and regulators use: signed,
// deterministic export bundles of the ledger and the read projection
// (canonical event lines, CSV, quantification records, a manifest with
// SHA-256s and a Merkle root, anchored on the ledger) and the offline verifier
// that is the exact mirror of the writer. See docs/architecture.md.
package audit
