// Package partition owns which partitions of the events stream this worker
// reads: its membership key in SLUICE_MEMBERS (its value says whether the
// worker can write to S3), and the assignment of partitions to the sorted
// members that can write (all of them when none can), the same on every
// worker, so they balance (±1 each) without a coordinator. It tells the
// pipeline which consumers to read and unpins a handed-over partition once
// it is settled; it must not fetch, gather or acknowledge messages.
package partition
