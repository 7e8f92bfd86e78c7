package keys_test

import (
	"context"
	"crypto"
	"fmt"
	"log"
	"os"

	"github.com/greenpoints/greenpoints/internal/keys"
)

// Sign an export with a named key, and keep a person's fields under a data
// key wrapped by the KEK.
func ExampleFileManager() {
	dir, err := os.MkdirTemp("", "keys-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	m, err := keys.NewFileManager(dir)
	if err != nil {
		log.Fatal(err)
	}

	// Signing: store the KeyID with the signature; verify with PublicKey(id),
	// which keeps working after Rotate.
	signer, id, err := m.Signer(ctx, "export")
	if err != nil {
		log.Fatal(err)
	}
	export := []byte(`{"batch":7}`)
	sig, err := signer.Sign(nil, export, crypto.Hash(0))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := m.Rotate(ctx, "export"); err != nil {
		log.Fatal(err)
	}
	pub, err := m.PublicKey(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id, keys.Verify(pub, export, sig))

	// Envelope encryption: store wrapped and sealed; delete wrapped to shred.
	owner := []byte("person:0190c7e2")
	dk, err := keys.NewDataKey()
	if err != nil {
		log.Fatal(err)
	}
	wrapped, err := m.WrapKey(ctx, dk, owner)
	if err != nil {
		log.Fatal(err)
	}
	sealed, err := keys.SealData(dk, []byte("Li Wei"), append(owner, "|name"...))
	if err != nil {
		log.Fatal(err)
	}

	dk2, err := m.UnwrapKey(ctx, wrapped, owner)
	if err != nil {
		log.Fatal(err)
	}
	name, err := keys.OpenData(dk2, sealed, append(owner, "|name"...))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(name))
	// Output:
	// export/v1 true
	// Li Wei
}
