package api

import (
	"github.com/greenpoints/greenpoints/internal/uscc"
	"github.com/greenpoints/greenpoints/issuer/evidence"
)

// The USCC check lives in internal/uscc and the MCC format in
// issuer/evidence, so that the edge and the domain refuse the same codes;
// their tests live there too.

// validUSCC reports whether code is a well-formed USCC with a correct check
// character.
func validUSCC(code string) bool { return uscc.Valid(code) }

// validMCC reports whether s is an ISO 18245 merchant category code.
func validMCC(s string) bool { return evidence.ValidMCC(s) }
