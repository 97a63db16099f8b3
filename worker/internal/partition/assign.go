package partition

import "slices"

// Assign is the slots (0 to slots-1) that member self owns among members:
// slot i goes to the member at index i mod len(members) in sorted order.
// Every worker computes it from the same list, so each slot has one owner
// and each member owns slots/len(members) of them, rounded down or up. A
// member not in the list owns nothing.
func Assign(members []string, self string, slots int) []int {
	sorted := slices.Clone(members)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	at := slices.Index(sorted, self)
	if at < 0 {
		return nil
	}
	var own []int
	for i := at; i < slots; i += len(sorted) {
		own = append(own, i)
	}
	return own
}
