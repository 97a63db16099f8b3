// Package partition owns which partitions of the events stream this worker
// reads: its membership key in SLUICE_MEMBERS, and the assignment of
// partitions to the sorted members, the same on every worker, so they
// balance (±1 each) without a coordinator. It tells the pipeline which
// consumers to read and unpins a handed-over partition once it is settled;
// it must not fetch, batch or acknowledge messages.
package partition
