// Package partition owns which partitions of the events stream this worker
// reads: its SLUICE_MEMBERS key (whose value says whether it can write to S3)
// and the assignment of partitions to the sorted members that can write (all
// when none can), the same on every worker, so they balance (±1) without a
// coordinator. It tells the pipeline which consumers to read and unpins a
// handed-over partition once settled; it must not fetch, gather or ack.
package partition
