// Command greenpoints-chaincode serves the points contract as a Fabric
// chaincode service (chaincode as a service); see chaincode/fabric/shimcc.
package main

import (
	"fmt"
	"os"

	"github.com/greenpoints/greenpoints/chaincode/fabric/shimcc"
)

func main() {
	if err := shimcc.Serve(); err != nil {
		fmt.Fprintln(os.Stderr, "greenpoints-chaincode:", err)
		os.Exit(1)
	}
}
