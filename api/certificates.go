package api

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/greenpoints/greenpoints/chaincode/points"
	"github.com/greenpoints/greenpoints/internal/apperr"
)

// certificateWait bounds how long the public check waits for the
// projection to show a just-committed donation's block.
const certificateWait = 5 * time.Second

// certificateLimit applies the per-client-IP token bucket of the public
// certificate check: it needs no login, so the limit is what stops anyone
// from scanning receipt ids (which are 128-bit and unguessable anyway).
func (h *meHandlers) certificateLimit(c *gin.Context) {
	ip := c.ClientIP()
	h.mu.Lock()
	l, ok := h.limits[ip]
	if !ok {
		if len(h.limits) >= maxIPLimiters {
			// Forget everyone rather than grow without bound: a fresh
			// bucket per IP is the worst an attacker gains.
			clear(h.limits)
		}
		l = rate.NewLimiter(h.d.CertificateRate, h.d.CertificateBurst)
		h.limits[ip] = l
	}
	h.mu.Unlock()
	r := l.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(max(d, time.Second).Seconds()))))
		WriteError(c, apperr.New(apperr.RateLimited, ReasonRateLimited, "too many certificate checks from your address; retry after the Retry-After delay"))
		return
	}
	c.Next()
}

// certificate returns the certificate of a donation receipt, as recorded on
// the ledger, with the block of its transaction.
func (h *meHandlers) certificate(c *gin.Context) {
	id := c.Param("receiptId")
	if !validReceiptID(id) {
		WriteError(c, &apperr.Error{Code: apperr.Invalid, Reason: "invalid_receipt_id", Detail: "a receipt id is 32 lowercase hex digits",
			Fields: []apperr.FieldError{{Field: "receiptId", Reason: "format", Detail: "a receipt id is 32 lowercase hex digits"}}})
		return
	}
	var res points.ReceiptResult
	if err := h.evaluate(c, "GetReceipt", points.ReceiptArgs{ReceiptID: id}, &res); err != nil {
		if apperr.CodeOf(err) == apperr.Forbidden {
			// Another issuer's receipt: this server cannot vouch for it,
			// and must not say that it exists.
			err = apperr.New(apperr.NotFound, "receipt_not_found", "receipt %s does not exist", id)
		}
		WriteError(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(c, certificateWait)
	defer cancel()
	cp, err := h.d.Reads.WaitFor(ctx, res.Receipt.TxID)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = apperr.Wrap(err, apperr.Unavailable, "not_yet_visible", "the donation is on the ledger but its block is not indexed yet; retry shortly")
		}
		WriteError(c, err)
		return
	}
	c.JSON(http.StatusOK, certificateJSON(res.Receipt, cp.Block))
}

func validReceiptID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}
