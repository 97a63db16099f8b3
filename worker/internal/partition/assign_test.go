package partition

import (
	"fmt"
	"slices"
	"testing"
)

// Every slot has exactly one owner, and owners differ by at most one slot,
// for any member count; the assignment does not depend on the order of the
// list.
func TestAssignBalances(t *testing.T) {
	for members := 1; members <= 20; members++ {
		var list []string
		for i := range members {
			list = append(list, fmt.Sprintf("w%02d", (i+members/2)%members)) // not in sorted order
		}
		owner := map[int]string{}
		least, most := 1<<30, 0
		for _, m := range list {
			own := Assign(list, m, 17)
			least, most = min(least, len(own)), max(most, len(own))
			for _, s := range own {
				if prev, taken := owner[s]; taken {
					t.Fatalf("%d members: slot %d owned by %s and %s", members, s, prev, m)
				}
				owner[s] = m
			}
			reversed := slices.Clone(list)
			slices.Reverse(reversed)
			if !slices.Equal(own, Assign(reversed, m, 17)) {
				t.Fatalf("%d members: assignment of %s depends on the list's order", members, m)
			}
		}
		if len(owner) != 17 || most-least > 1 {
			t.Errorf("%d members: %d slots owned, between %d and %d per member", members, len(owner), least, most)
		}
	}
	if own := Assign([]string{"a", "b"}, "c", 4); own != nil {
		t.Errorf("a non-member owns %v", own)
	}
}
