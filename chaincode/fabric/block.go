package fabric

import (
	"errors"
	"time"

	"github.com/hyperledger/fabric-protos-go-apiv2/common"
	"github.com/hyperledger/fabric-protos-go-apiv2/msp"
	"github.com/hyperledger/fabric-protos-go-apiv2/peer"
	"google.golang.org/protobuf/proto"
)

// blockTx is what we read of one endorser transaction in a block.
type blockTx struct {
	txID      string
	timestamp time.Time
	caller    string // the creator's MSP id
	chaincode string
	function  string
	eventName string
	event     []byte
}

var errNotEndorserTx = errors.New("not an endorser transaction")

// parseTx decodes an envelope of a block's data.
func parseTx(raw []byte) (*blockTx, error) {
	var env common.Envelope
	if err := proto.Unmarshal(raw, &env); err != nil {
		return nil, err
	}
	var pl common.Payload
	if err := proto.Unmarshal(env.GetPayload(), &pl); err != nil {
		return nil, err
	}
	var ch common.ChannelHeader
	if err := proto.Unmarshal(pl.GetHeader().GetChannelHeader(), &ch); err != nil {
		return nil, err
	}
	if common.HeaderType(ch.GetType()) != common.HeaderType_ENDORSER_TRANSACTION {
		return nil, errNotEndorserTx
	}
	tx := &blockTx{txID: ch.GetTxId(), timestamp: ch.GetTimestamp().AsTime().UTC()}
	var sh common.SignatureHeader
	if err := proto.Unmarshal(pl.GetHeader().GetSignatureHeader(), &sh); err != nil {
		return nil, err
	}
	var creator msp.SerializedIdentity
	if err := proto.Unmarshal(sh.GetCreator(), &creator); err != nil {
		return nil, err
	}
	tx.caller = creator.GetMspid()
	var ptx peer.Transaction
	if err := proto.Unmarshal(pl.GetData(), &ptx); err != nil {
		return nil, err
	}
	if len(ptx.GetActions()) == 0 {
		return nil, errNotEndorserTx
	}
	var act peer.ChaincodeActionPayload
	if err := proto.Unmarshal(ptx.GetActions()[0].GetPayload(), &act); err != nil {
		return nil, err
	}
	var cpp peer.ChaincodeProposalPayload
	if err := proto.Unmarshal(act.GetChaincodeProposalPayload(), &cpp); err != nil {
		return nil, err
	}
	var cis peer.ChaincodeInvocationSpec
	if err := proto.Unmarshal(cpp.GetInput(), &cis); err != nil {
		return nil, err
	}
	if args := cis.GetChaincodeSpec().GetInput().GetArgs(); len(args) > 0 {
		tx.function = string(args[0])
	}
	var prp peer.ProposalResponsePayload
	if err := proto.Unmarshal(act.GetAction().GetProposalResponsePayload(), &prp); err != nil {
		return nil, err
	}
	var ca peer.ChaincodeAction
	if err := proto.Unmarshal(prp.GetExtension(), &ca); err != nil {
		return nil, err
	}
	tx.chaincode = ca.GetChaincodeId().GetName()
	if len(ca.GetEvents()) > 0 {
		var ev peer.ChaincodeEvent
		if err := proto.Unmarshal(ca.GetEvents(), &ev); err != nil {
			return nil, err
		}
		tx.eventName, tx.event = ev.GetEventName(), ev.GetPayload()
	}
	return tx, nil
}
