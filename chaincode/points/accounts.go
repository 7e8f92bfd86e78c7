package points

import "github.com/greenpoints/greenpoints/internal/apperr"

func validKind(k string) bool {
	return k == KindConsumer || k == KindEnterprise || k == KindCharity
}

// openAccount opens a pseudonymous account owned by the calling issuer.
// Opening it again with the same kind is a harmless retry.
func openAccount(t *txn, a *OpenAccountArgs) (any, error) {
	if err := needID("accountId", a.AccountID); err != nil {
		return nil, err
	}
	if !validKind(a.Kind) {
		return nil, errInvalid("invalid_kind", "kind", "kind must be consumer, enterprise or charity")
	}
	var old Account
	found, err := t.getJSON(accountKey(a.AccountID), &old)
	if err != nil {
		return nil, err
	}
	if found {
		if old.Issuer == t.caller && old.Kind == a.Kind {
			return AccountResult{Status: "already_open", Account: old}, nil
		}
		return nil, apperr.New(apperr.Conflict, "account_exists", "account %s already exists", a.AccountID)
	}
	acct := t.newAccount(a)
	if err := t.put(accountKey(acct.ID), acct); err != nil {
		return nil, err
	}
	return AccountResult{Status: "opened", Account: *acct}, nil
}

func (t *txn) newAccount(a *OpenAccountArgs) *Account {
	acct := &Account{ID: a.AccountID, Kind: a.Kind, Issuer: t.caller, OpenedAt: t.now, TxID: t.txID}
	t.emit(Change{Type: ChangeAccountOpened, Account: acct})
	return acct
}

// openAccounts opens up to MaxOpenAccounts accounts at once, all or nothing;
// accounts already open with the same issuer and kind are skipped.
func openAccounts(t *txn, a *OpenAccountsArgs) (any, error) {
	if len(a.Accounts) == 0 {
		return nil, errInvalid("empty_batch", "accounts", "no accounts given")
	}
	if len(a.Accounts) > MaxOpenAccounts {
		return nil, apperr.New(apperr.TooLarge, "batch_too_large", "at most %d accounts per call", MaxOpenAccounts)
	}
	keys := make([]string, len(a.Accounts))
	for i, x := range a.Accounts {
		if !validID(x.AccountID) {
			return nil, errInvalid("invalid_account_id", "accounts", "accounts[%d].accountId must match [A-Za-z0-9._:-]{1,128}", i)
		}
		if !validKind(x.Kind) {
			return nil, errInvalid("invalid_kind", "accounts", "accounts[%d].kind must be consumer, enterprise or charity", i)
		}
		keys[i] = accountKey(x.AccountID)
	}
	vals, err := t.getMany(keys...)
	if err != nil {
		return nil, err
	}
	var res AccountsResult
	for i, x := range a.Accounts {
		if vals[i] == nil {
			if _, dup := t.overlay[keys[i]]; dup { // twice in this call
				return nil, errInvalid("duplicate_account", "accounts", "account %s appears twice", x.AccountID)
			}
			if err := t.put(keys[i], t.newAccount(&a.Accounts[i])); err != nil {
				return nil, err
			}
			res.Opened++
			continue
		}
		var old Account
		if err := unmarshalState(keys[i], vals[i], &old); err != nil {
			return nil, err
		}
		if _, dup := t.overlay[keys[i]]; dup || old.Issuer != t.caller || old.Kind != x.Kind {
			return nil, apperr.New(apperr.Conflict, "account_exists", "account %s already exists", x.AccountID)
		}
		res.AlreadyOpen++
	}
	return res, nil
}
