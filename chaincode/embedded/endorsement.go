package embedded

import (
	"errors"
	"fmt"
)

// Key-level endorsement on the embedded ledger. On Fabric the points
// contract gives each issuer's keys the policy "that issuer AND the
// regulator" (stub.Stub.SetKeyEndorsers), so that one bank's peer cannot
// endorse another bank's lots. The embedded ledger is ONE organisation: one
// block producer endorses, validates and commits every transaction, so there
// is no second endorser whose signature a policy could demand, and no policy
// is stored. The call is checked as Fabric's shim would accept it (a valid
// key, at least one MSP id) and, stricter than Fabric, the key must be
// written by this transaction: the contract only protects keys it writes,
// and a call on any other key is a contract bug that the embedded tests
// should catch before Fabric does. The docs say the embedded ledger is not
// a multi-party trust boundary (docs/fabric.md, key-level endorsement).

// SetKeyEndorsers implements stub.Stub: checked, recorded nowhere.
func (s *simulator) SetKeyEndorsers(key string, msps ...string) error {
	if err := s.live(); err != nil {
		return err
	}
	if err := validateKey(key); err != nil {
		return err
	}
	if len(msps) == 0 {
		return errors.New("a key-level endorsement policy needs at least one MSP id")
	}
	for _, m := range msps {
		if m == "" {
			return errors.New("a key-level endorsement policy names an empty MSP id")
		}
	}
	if s.readOnly {
		return nil // an evaluation's writes are discarded anyway
	}
	if w, ok := s.lastWrite(key); !ok || w.del {
		return fmt.Errorf("txid [%s]: key-level endorsement set on key [%s], which this transaction does not write", s.txID, key)
	}
	return nil
}
