package transport

const peerEnv = "TRANSPORT_TEST_PEER"

func runPeer(mode string) {}
