package secret

import (
	"strings"
	"testing"
	"time"
)

// Sortable ids sort in the order they were made (across milliseconds), are 26
// characters of 0-9 and a-v (no ':' for op, no leading '-' for command lines), and
// differ within a millisecond.
func TestNewSortableID(t *testing.T) {
	var ids []string
	seen := map[string]bool{}
	for range 5 {
		for range 200 {
			id := NewSortableID()
			if len(id) != 26 || strings.Trim(id, "0123456789abcdefghijklmnopqrstuv") != "" {
				t.Fatalf("id %q: want 26 characters of 0-9a-v", id)
			}
			if seen[id] {
				t.Fatalf("id %q made twice", id)
			}
			seen[id] = true
			ids = append(ids, id)
		}
		time.Sleep(2 * time.Millisecond)
	}
	// An id made in a later millisecond sorts after one made earlier.
	ms := make([]uint64, len(ids))
	for i, id := range ids {
		b, err := sortableEncoding.DecodeString(id)
		if err != nil || len(b) != 16 {
			t.Fatalf("id %q does not decode to 16 bytes: %v", id, err)
		}
		for _, c := range b[:6] {
			ms[i] = ms[i]<<8 | uint64(c)
		}
	}
	if ms[0] == ms[len(ms)-1] {
		t.Fatal("ids made milliseconds apart carry the same time")
	}
	for i := range ids {
		for j := i + 1; j < len(ids); j++ {
			if ms[i] > ms[j] || ms[i] < ms[j] && ids[i] >= ids[j] {
				t.Fatalf("id %q (ms %d) made before %q (ms %d) does not sort before it", ids[i], ms[i], ids[j], ms[j])
			}
		}
	}
}
