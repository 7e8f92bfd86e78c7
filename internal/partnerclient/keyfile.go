package partnerclient

import (
	"fmt"
	"os"
	"strings"

	"github.com/greenpoints/greenpoints/internal/webhook"
)

// FromKeyFile returns a client for partner that signs with the key in
// file: an Ed25519 private key (whsk_..., v1a) or an HMAC secret
// (whsec_..., v1), as the demo writes them for its sandbox partners.
func FromKeyFile(baseURL, partner, file string) (*Client, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read partner key: %w", err)
	}
	k := strings.TrimSpace(string(b))
	var s webhook.Signer
	switch {
	case strings.HasPrefix(k, webhook.PrivateKeyPrefix):
		priv, err := webhook.ParsePrivateKey(k)
		if err != nil {
			return nil, fmt.Errorf("partner key %s: %w", file, err)
		}
		s = webhook.Ed25519Signer(priv)
	case strings.HasPrefix(k, webhook.SecretPrefix):
		secret, err := webhook.ParseSecret(k)
		if err != nil {
			return nil, fmt.Errorf("partner key %s: %w", file, err)
		}
		s = webhook.HMACSigner(secret)
	default:
		return nil, fmt.Errorf("partner key %s holds neither a whsk_ private key nor a whsec_ secret", file)
	}
	return &Client{BaseURL: baseURL, Partner: partner, Signer: s}, nil
}
