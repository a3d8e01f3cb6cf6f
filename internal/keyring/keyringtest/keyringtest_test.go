package keyringtest

import (
	"bytes"
	"slices"
	"testing"
)

func TestRandom(t *testing.T) {
	one := Random(t)
	if one.PrimaryID() != "k1" || !slices.Equal(one.IDs(), []string{"k1"}) {
		t.Fatalf("Random() = primary %s, IDs %v; want k1 alone", one.PrimaryID(), one.IDs())
	}
	two := Random(t, "b", "a")
	if two.PrimaryID() != "b" || len(two.IDs()) != 2 {
		t.Fatalf("Random(b, a) = primary %s, IDs %v; want b primary of two", two.PrimaryID(), two.IDs())
	}
	// Fresh keys: the same plaintext sealed under two rings' k1 does not open across them.
	id, ct, err := one.Seal([]byte("plain"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Random(t).Open(id, ct, nil); err == nil {
		t.Fatal("a second Random ring opened the first one's ciphertext: the keys are not fresh")
	}
	if pt, err := one.Open(id, ct, nil); err != nil || !bytes.Equal(pt, []byte("plain")) {
		t.Fatalf("Open = %q, %v", pt, err)
	}
}
