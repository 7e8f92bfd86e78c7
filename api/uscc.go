package api

import "github.com/greenpoints/greenpoints/internal/uscc"

// The USCC check lives in internal/uscc, shared with issuer/evidence so that
// onboarding and evidence refuse the same codes. These names remain for the
// "uscc" validation rule and for the package's existing tests.

const usccCharset = uscc.Charset

func usccCheckChar(code string) (byte, bool) { return uscc.CheckChar(code) }

// validUSCC reports whether code is a well-formed USCC with a correct check
// character.
func validUSCC(code string) bool { return uscc.Valid(code) }
