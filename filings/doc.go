// Package filings will provide the issuer's regulatory filings (备案, credit
// certification, third-party assessment): the issuer profile with its unified
// social credit code, filings generated from ledger statistics, and the
// regulator's review, whose acceptance registers or updates the issuer on the
// ledger. See docs/architecture.md.
package filings
