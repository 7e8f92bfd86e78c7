package notices

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
	"github.com/greenpoints/greenpoints/internal/database"
	"github.com/greenpoints/greenpoints/internal/merkle"
	"github.com/greenpoints/greenpoints/issuer"
)

// Leaf is the record of one finished notification that is anchored: its
// canonical JSON (this field order, times in UTC) is a Merkle leaf. It
// names the consumer only by pseudonymous account and the gateway's
// receipt only by id and SHA-256, so anchoring reveals no personal data.
type Leaf struct {
	ID            string     `json:"id"`
	Issuer        string     `json:"issuer"`
	Kind          string     `json:"kind"`
	Account       string     `json:"account"`
	LotKey        string     `json:"lotKey,omitempty"`
	OffsetDays    int        `json:"offsetDays,omitempty"`
	ExpiresAt     *time.Time `json:"expiresAt,omitempty"`
	Points        int64      `json:"points,omitempty"`
	ChangeID      string     `json:"changeId,omitempty"`
	EffectiveAt   *time.Time `json:"effectiveAt,omitempty"`
	Channel       string     `json:"channel"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	CreatedAt     time.Time  `json:"createdAt"`
	FinishedAt    time.Time  `json:"finishedAt"`
	ReceiptID     string     `json:"receiptId,omitempty"`
	ReceiptSHA256 string     `json:"receiptSha256,omitempty"` // of the gateway's exact answer
}

// Batch is an anchored batch of notifications.
type Batch struct {
	BatchID    string
	Kind       string
	MerkleRoot string // hex
	Count      int
	TxID       string
}

// AnchorBatches anchors the issuer's finished notifications on the ledger,
// per kind, in batches of at most BatchLeaves: a batch is cut (leaves in id
// order, i.e. creation order, and their canonical JSON stored with the rows)
// and recorded in PostgreSQL first, then AnchorNoticeBatch submits its
// Merkle root; batches recorded but not yet anchored (a crash in between)
// are anchored first. A partial batch waits until its oldest notification
// has been finished for AnchorAfter. It returns the batches anchored.
func (s *Service) AnchorBatches(ctx context.Context, now time.Time) ([]Batch, error) {
	var out []Batch
	rows, err := s.pool.Query(ctx, `SELECT batch_id, kind, merkle_root, count FROM notice_batches
		WHERE issuer = $1 AND anchored_at IS NULL ORDER BY created_at, batch_id`, s.cfg.IssuerMSP)
	if err != nil {
		return nil, err
	}
	pending, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Batch, error) {
		var b Batch
		return b, r.Scan(&b.BatchID, &b.Kind, &b.MerkleRoot, &b.Count)
	})
	if err != nil {
		return nil, err
	}
	for _, kind := range []string{KindReminder, KindNotice} {
		for {
			b, ok, err := s.cutBatch(ctx, now, kind)
			if err != nil {
				return out, err
			}
			if !ok {
				break
			}
			pending = append(pending, b)
		}
	}
	for _, b := range pending {
		if err := s.anchor(ctx, &b); err != nil {
			return out, fmt.Errorf("anchor batch %s: %w", b.BatchID, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// cutBatch assigns up to BatchLeaves finished, unbatched notifications of
// kind to a new batch in one transaction.
func (s *Service) cutBatch(ctx context.Context, now time.Time, kind string) (Batch, bool, error) {
	var b Batch
	var ok bool
	err := database.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, issuer, kind, account, lot_key, offset_days, expires_at, points, change_id, effective_at,
				channel, status, attempts, created_at, finished_at, receipt_id, receipt
			FROM notifications WHERE issuer = $1 AND kind = $2 AND status <> 'pending' AND batch_id IS NULL
			ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED`, s.cfg.IssuerMSP, kind, s.cfg.BatchLeaves)
		if err != nil {
			return err
		}
		var leaves []Leaf
		oldest := now
		var l Leaf
		var lotKey, changeID, receiptID *string
		var offset *int
		var pts *int64
		var receipt []byte
		_, err = pgx.ForEachRow(rows, []any{&l.ID, &l.Issuer, &l.Kind, &l.Account, &lotKey, &offset, &l.ExpiresAt, &pts, &changeID, &l.EffectiveAt,
			&l.Channel, &l.Status, &l.Attempts, &l.CreatedAt, &l.FinishedAt, &receiptID, &receipt}, func() error {
			l.LotKey, l.OffsetDays, l.Points, l.ChangeID, l.ReceiptID = deref(lotKey), deref(offset), deref(pts), deref(changeID), deref(receiptID)
			if receipt != nil {
				sum := sha256.Sum256(receipt)
				l.ReceiptSHA256 = hex.EncodeToString(sum[:])
			}
			l.CreatedAt, l.FinishedAt = l.CreatedAt.UTC(), l.FinishedAt.UTC()
			if l.ExpiresAt != nil {
				t := l.ExpiresAt.UTC()
				l.ExpiresAt = &t
			}
			if l.EffectiveAt != nil {
				t := l.EffectiveAt.UTC()
				l.EffectiveAt = &t
			}
			if l.FinishedAt.Before(oldest) {
				oldest = l.FinishedAt
			}
			leaves = append(leaves, l)
			l, receipt = Leaf{}, nil
			return nil
		})
		if err != nil {
			return err
		}
		if len(leaves) == 0 || (len(leaves) < s.cfg.BatchLeaves && s.cfg.AnchorAfter > 0 && now.Sub(oldest) < s.cfg.AnchorAfter) {
			return nil
		}
		id, err := uuid.NewV7()
		if err != nil {
			return err
		}
		b = Batch{BatchID: "nb-" + id.String(), Kind: kind, Count: len(leaves)}
		hashes := make([]merkle.Hash, len(leaves))
		q := &pgx.Batch{}
		for i, l := range leaves {
			doc, err := json.Marshal(l)
			if err != nil {
				return err
			}
			hashes[i] = merkle.LeafHash(doc)
			q.Queue(`UPDATE notifications SET batch_id = $2, leaf_index = $3, leaf = $4 WHERE id = $1 AND batch_id IS NULL`, l.ID, b.BatchID, i, doc)
		}
		root := merkle.Root(hashes)
		b.MerkleRoot = hex.EncodeToString(root[:])
		if _, err := tx.Exec(ctx, `INSERT INTO notice_batches (batch_id, issuer, kind, merkle_root, count, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			b.BatchID, s.cfg.IssuerMSP, kind, b.MerkleRoot, b.Count, now); err != nil {
			return err
		}
		res := tx.SendBatch(ctx, q)
		for range q.Len() {
			tag, err := res.Exec()
			if err != nil {
				res.Close()
				return err
			}
			if tag.RowsAffected() != 1 {
				res.Close()
				return errors.New("a notification was batched concurrently")
			}
		}
		if err := res.Close(); err != nil {
			return err
		}
		ok = true
		return nil
	})
	return b, ok, err
}

// anchor submits AnchorNoticeBatch (idempotent on the batch id) and
// records the anchoring transaction.
func (s *Service) anchor(ctx context.Context, b *Batch) error {
	args, err := json.Marshal(points.AnchorNoticeBatchArgs{BatchID: b.BatchID, Kind: b.Kind, MerkleRoot: b.MerkleRoot, Count: int64(b.Count)})
	if err != nil {
		return err
	}
	tx, err := s.led.Submit(ctx, issuer.Proposal{Caller: s.cfg.IssuerMSP, Function: "AnchorNoticeBatch", Args: args})
	if err != nil {
		return err
	}
	var res points.NoticeResult
	if err := json.Unmarshal(tx.Payload, &res); err != nil {
		return fmt.Errorf("AnchorNoticeBatch result: %w", err)
	}
	b.TxID = res.Notice.TxID // the original transaction when already anchored
	_, err = s.pool.Exec(ctx, `UPDATE notice_batches SET anchored_at = $2, tx_id = $3 WHERE batch_id = $1`, b.BatchID, res.Notice.AnchoredAt, res.Notice.TxID)
	return err
}

// Proof shows that a notification is leaf Index of a batch of Size whose
// Merkle root is anchored on the ledger by Issuer under BatchID.
type Proof struct {
	Issuer  string          `json:"issuer"`
	BatchID string          `json:"batchId"`
	Kind    string          `json:"kind"`
	Leaf    json.RawMessage `json:"leaf"` // the Leaf's exact canonical JSON
	Index   uint64          `json:"index"`
	Size    uint64          `json:"size"`
	Path    []string        `json:"path"` // hex sibling hashes, leaf to root
	Root    string          `json:"root"` // hex
}

// Prove returns the inclusion proof of notification id in its batch.
// Errors: apperr NotFound "notification_not_found", Conflict
// "notification_not_batched" (not finished or not yet batched).
func (s *Service) Prove(ctx context.Context, id string) (*Proof, error) {
	var batchID *string
	var idx *int
	if err := s.pool.QueryRow(ctx, `SELECT batch_id, leaf_index FROM notifications WHERE id = $1`, id).Scan(&batchID, &idx); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, apperr.New(apperr.NotFound, "notification_not_found", "no notification %s", id)
		}
		return nil, err
	}
	if batchID == nil {
		return nil, apperr.New(apperr.Conflict, "notification_not_batched", "notification %s is not in an anchored batch yet", id)
	}
	p := &Proof{BatchID: *batchID, Index: uint64(*idx)}
	if err := s.pool.QueryRow(ctx, `SELECT issuer, kind, merkle_root, count FROM notice_batches WHERE batch_id = $1`, *batchID).Scan(&p.Issuer, &p.Kind, &p.Root, &p.Size); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT leaf FROM notifications WHERE batch_id = $1 ORDER BY leaf_index`, *batchID)
	if err != nil {
		return nil, err
	}
	docs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, err
	}
	if uint64(len(docs)) != p.Size {
		return nil, fmt.Errorf("batch %s has %d leaves stored, %d anchored", *batchID, len(docs), p.Size)
	}
	hashes := make([]merkle.Hash, len(docs))
	for i, d := range docs {
		hashes[i] = merkle.LeafHash(d)
	}
	path, err := merkle.InclusionProof(hashes, *idx)
	if err != nil {
		return nil, err
	}
	p.Leaf = docs[*idx]
	for _, h := range path {
		p.Path = append(p.Path, hex.EncodeToString(h[:]))
	}
	return p, nil
}

// ProveLotReminded returns the proof of a delivered reminder of the lot:
// what an auditor asks for an expired lot. Errors: apperr NotFound
// "no_delivered_reminder" (see Grace for why), Conflict
// "notification_not_batched".
func (s *Service) ProveLotReminded(ctx context.Context, lotKey string) (*Proof, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT id FROM notifications WHERE lot_key = $1 AND status = 'sent'
		ORDER BY batch_id IS NULL, offset_days LIMIT 1`, lotKey).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, apperr.New(apperr.NotFound, "no_delivered_reminder", "no reminder of lot %s was delivered", lotKey)
	}
	if err != nil {
		return nil, err
	}
	return s.Prove(ctx, id)
}

// VerifyProof checks p against a batch anchored with root and count (as
// read from the ledger): the sizes and roots agree and the leaf's audit
// path leads to the root. It is all an auditor needs besides the ledger.
func VerifyProof(p *Proof, anchoredRoot string, anchoredCount int64) error {
	if p.Root != anchoredRoot || anchoredCount < 0 || p.Size != uint64(anchoredCount) {
		return fmt.Errorf("the proof's tree (root %s, %d leaves) is not the anchored one (root %s, %d leaves)", p.Root, p.Size, anchoredRoot, anchoredCount)
	}
	root, err := decodeHash(anchoredRoot)
	if err != nil {
		return err
	}
	path := make([]merkle.Hash, len(p.Path))
	for i, h := range p.Path {
		if path[i], err = decodeHash(h); err != nil {
			return err
		}
	}
	return merkle.VerifyInclusion(merkle.LeafHash(p.Leaf), p.Index, p.Size, path, root)
}

// VerifyAnchored reads the batch's anchor from the ledger (GetAnchors as
// caller: the issuer, the regulator or an auditor) and verifies p against
// it. Errors: apperr NotFound "batch_not_anchored" when the ledger lists no
// such batch (GetAnchors lists up to 1,000 batches per issuer).
func VerifyAnchored(ctx context.Context, led issuer.Ledger, caller string, p *Proof) error {
	args, err := json.Marshal(points.IssuerArgs{Issuer: p.Issuer})
	if err != nil {
		return err
	}
	raw, err := led.Evaluate(ctx, issuer.Proposal{Caller: caller, Function: "GetAnchors", Args: args})
	if err != nil {
		return err
	}
	var a points.Anchors
	if err := json.Unmarshal(raw, &a); err != nil {
		return err
	}
	for _, n := range a.Notices {
		if n.BatchID == p.BatchID {
			if n.Kind != p.Kind {
				return fmt.Errorf("batch %s is anchored as %s, not %s", p.BatchID, n.Kind, p.Kind)
			}
			return VerifyProof(p, n.MerkleRoot, n.Count)
		}
	}
	return apperr.New(apperr.NotFound, "batch_not_anchored", "issuer %s has no anchored notice batch %s (listing truncated: %v)", p.Issuer, p.BatchID, a.Truncated)
}

func decodeHash(s string) (merkle.Hash, error) {
	var h merkle.Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("%q is not a hex SHA-256", s)
	}
	copy(h[:], b)
	return h, nil
}
