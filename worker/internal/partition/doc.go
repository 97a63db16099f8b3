// Package partition owns which partitions of the events stream this worker
// reads: its membership key in the JetStream KV bucket SLUICE_MEMBERS, kept
// alive while it runs, and the assignment of partitions to the sorted list
// of members, the same on every worker, so that they balance themselves
// (±1 partition each) without a coordinator. It tells the pipeline which
// consumers to read and, once a handed-over partition is settled, unpins
// it on the server so the next owner is served at once. It must not fetch,
// batch or acknowledge messages.
package partition
