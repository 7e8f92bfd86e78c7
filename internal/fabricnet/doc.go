// Package fabricnet builds the pinned Hyperledger Fabric binaries from the Go
// module proxy and runs a Fabric network on 127.0.0.1 as native processes,
// for tests, benchmarks and `make fabric-up`. There is no Docker here: every
// orderer and peer is a child process that we configure, start, wait for and
// stop by PID. Crypto material, configuration and ledgers are generated at
// run time into the network's directory and never committed.
package fabricnet
