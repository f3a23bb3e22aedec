// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Registry} from "./Registry.sol";

/// @title AdmmCoordinator: the consensus-ADMM aggregator step (Münsing's S1, B-DER steps 3–5).
/// @notice Node k owns a local coupling vector whose entry j copies global variable
/// map[offset_k + j]. Values are int64 fixed point (scale set by the client), big-endian.
/// A node submits its vector in calldata; the contract keeps only a hash of it. The aggregator
/// closes the round with every submitted vector and the previous z in calldata; the contract
/// checks them against the stored hashes, computes in memory
///   z_g = mean of the submitted copies of g (previous z_g when none was submitted),
///   primalSq = Σ_submitted copies (x_c − z_g)²,  dualSq = Σ_all copies (z_g − zPrev_g)²,
/// and emits z with the residual sums. Storage per round: one word per submitting node (192 bits
/// of the submission's hash and the round tag), the hash of z and the round header.
contract AdmmCoordinator {
    uint256 private constant AGGREGATOR = 8;
    uint256 private constant CHUNK = 24000;

    Registry public immutable registry;

    uint256 public nGlobal;
    uint256 public nNodes;
    uint256 public nCopies;
    /// @dev code-stored chunks of the copy map: per node uint32 offset, then uint16 per copy
    address[] private mapChunks;
    /// @dev account -> (node + 1) << 64 | offset << 32 | count
    mapping(address => uint256) public nodeWordOf;
    mapping(uint256 => address) public nodeAccount;

    uint64 public round;
    uint64 public deadline;
    bool public isOpen;
    bool public converged;
    bytes32 public zHash;
    uint256 public primalSq;
    uint256 public dualSq;
    /// @dev node -> high 192 bits of keccak(round, x) | (round + 1) in the low 64 bits
    mapping(uint256 => uint256) private submission;

    error Unauthorized(address account, uint256 role);
    error AlreadySetUp();
    error BadSetup();
    error RoundNotOpen(uint256 round);
    error RoundStillOpen(uint256 round);
    error WrongRound(uint256 expected, uint256 given);
    error PastDeadline(uint256 round);
    error UnknownNode(address account);
    error AlreadySubmitted(uint256 node);
    error BadLength();
    error SubmissionMismatch(uint256 node);
    error ZMismatch();

    event SetUp(uint256 nGlobal, uint256 nNodes, uint256 nCopies);
    event RoundOpened(uint256 indexed round, uint256 deadline);
    /// @dev the vector itself is in the transaction's calldata (submit(round, x))
    event Submitted(uint256 indexed round, uint256 indexed node);
    event RoundClosed(
        uint256 indexed round, bytes z, uint256 primalSq, uint256 dualSq, bool converged, bytes missing
    );

    modifier onlyAggregator() {
        require(registry.hasRole(msg.sender, AGGREGATOR), Unauthorized(msg.sender, AGGREGATOR));
        _;
    }

    constructor(Registry registry_) {
        registry = registry_;
    }

    /// @param nGlobal_ number of global variables (at most 65,536).
    /// @param counts number of coupling entries of each node.
    /// @param map uint16 global index of every copy, nodes in order.
    /// @param accounts the account each node submits from.
    function setup(uint256 nGlobal_, uint32[] calldata counts, bytes calldata map, address[] calldata accounts)
        external
        onlyAggregator
    {
        require(nNodes == 0, AlreadySetUp());
        uint256 n = counts.length;
        require(n > 0 && n == accounts.length && nGlobal_ > 0 && nGlobal_ <= 65536, BadSetup());
        bytes memory blob = new bytes(4 * n + map.length);
        uint256 off;
        for (uint256 k = 0; k < n; ++k) {
            require(nodeWordOf[accounts[k]] == 0, BadSetup());
            nodeWordOf[accounts[k]] = ((k + 1) << 64) | (off << 32) | counts[k];
            nodeAccount[k] = accounts[k];
            uint256 o = off;
            assembly ("memory-safe") {
                let ptr := add(add(blob, 32), mul(k, 4))
                mstore(ptr, or(shl(224, o), and(mload(ptr), not(shl(224, 0xffffffff)))))
            }
            off += counts[k];
        }
        require(map.length == 2 * off, BadLength());
        for (uint256 c = 0; c < off; ++c) {
            uint256 g;
            assembly ("memory-safe") {
                g := shr(240, calldataload(add(map.offset, mul(c, 2))))
            }
            require(g < nGlobal_, BadSetup());
        }
        assembly ("memory-safe") {
            calldatacopy(add(add(blob, 32), mul(n, 4)), map.offset, map.length)
        }
        for (uint256 start = 0; start < blob.length; start += CHUNK) {
            uint256 len = blob.length - start < CHUNK ? blob.length - start : CHUNK;
            mapChunks.push(_storeCode(blob, start, len));
        }
        nGlobal = nGlobal_;
        nNodes = n;
        nCopies = off;
        zHash = keccak256(new bytes(nGlobal_ * 8));
        emit SetUp(nGlobal_, n, off);
    }

    function openRound(uint64 round_, uint64 deadline_) external onlyAggregator {
        require(nNodes != 0, BadSetup());
        require(!isOpen, RoundStillOpen(round));
        require(round_ == round, WrongRound(round, round_));
        require(deadline_ > block.timestamp, PastDeadline(round_));
        isOpen = true;
        deadline = deadline_;
        emit RoundOpened(round_, deadline_);
    }

    /// @notice A node submits its local coupling values for the open round.
    function submit(uint64 round_, bytes calldata x) external {
        require(isOpen, RoundNotOpen(round_));
        require(round_ == round, WrongRound(round, round_));
        require(block.timestamp <= deadline, PastDeadline(round_));
        uint256 w = nodeWordOf[msg.sender];
        require(w != 0, UnknownNode(msg.sender));
        uint256 node = (w >> 64) - 1;
        require(x.length == 8 * (w & 0xffffffff), BadLength());
        uint256 tag = uint256(round_) + 1;
        require(uint64(submission[node]) != tag, AlreadySubmitted(node));
        bytes32 h;
        assembly ("memory-safe") {
            let buf := mload(0x40)
            mstore(buf, shl(192, round_))
            calldatacopy(add(buf, 8), x.offset, x.length)
            h := keccak256(buf, add(x.length, 8))
        }
        submission[node] = (uint256(h) & ~uint256(0xffffffffffffffff)) | tag;
        emit Submitted(round_, node);
    }

    function submitted(uint256 node) public view returns (bool) {
        return uint64(submission[node]) == uint256(round) + 1 && isOpen;
    }

    /// @notice Close the round: z-update and residual sums over the submitted vectors.
    /// @param xs the submitted vectors of the submitting nodes, in node order, concatenated.
    /// @param zPrev previous z (int64 each), all zero before the first round.
    /// @param epsPrimalSq converged when primalSq <= epsPrimalSq and rhoSq * dualSq <= epsDualSqScaled.
    function closeRound(
        bytes calldata xs,
        bytes calldata zPrev,
        uint256 epsPrimalSq,
        uint256 rhoSq,
        uint256 epsDualSqScaled
    ) external onlyAggregator {
        require(isOpen, RoundNotOpen(round));
        uint256 ng = nGlobal;
        require(zPrev.length == ng * 8, BadLength());
        require(keccak256(zPrev) == zHash, ZMismatch());
        bytes memory blob = _loadMap();
        // acc[g] = sum << 64 | submitted << 32 | all  (int128 sum, uint32 counts), zeroed
        uint256 acc;
        assembly ("memory-safe") {
            acc := mload(0x40)
            mstore(0x40, add(acc, mul(ng, 32)))
            calldatacopy(acc, calldatasize(), mul(ng, 32)) // memory past the free pointer may be dirty
        }
        (bytes memory missing, uint256 subMask) = _accumulate(xs, blob, acc);
        (bytes memory z, uint256 dSq) = _zUpdate(zPrev, ng, acc);
        uint256 pSq = _primal(xs, blob, acc, subMask);
        bool conv = pSq <= epsPrimalSq && rhoSq * dSq <= epsDualSqScaled;
        zHash = keccak256(z);
        primalSq = pSq;
        dualSq = dSq;
        converged = conv;
        isOpen = false;
        uint64 r = round;
        round = r + 1;
        emit RoundClosed(r, z, pSq, dSq, conv, missing);
    }

    /// @dev First pass: check each submitted vector against its stored hash and add it into acc;
    /// count the copies of missing nodes too. Returns the missing nodes (uint16 each) and, for
    /// the second pass, a bit per node (nodes beyond 255 are looked up again).
    function _accumulate(bytes calldata xs, bytes memory blob, uint256 acc)
        private
        view
        returns (bytes memory missing, uint256 subMask)
    {
        uint256 nn = nNodes;
        uint256 total = nCopies;
        uint64 r = round;
        uint256 tag = uint256(r) + 1;
        uint256 pos;
        uint256 c0;
        for (uint256 k = 0; k < nn; ++k) {
            uint256 cnt = _count(blob, k, nn, total);
            uint256 mp = _mapAt(blob, nn, c0);
            uint256 w = submission[k];
            if (uint64(w) == tag) {
                if (k < 256) subMask |= 1 << k;
                uint256 len = cnt * 8;
                require(pos + len <= xs.length, BadLength());
                bytes32 h;
                assembly ("memory-safe") {
                    let buf := mload(0x40) // scratch past the free pointer, not kept
                    mstore(buf, shl(192, r))
                    calldatacopy(add(buf, 8), add(xs.offset, pos), len)
                    h := keccak256(buf, add(len, 8))
                }
                require(uint256(h) >> 64 == w >> 64, SubmissionMismatch(k));
                assembly ("memory-safe") {
                    let xp := add(xs.offset, pos)
                    for { let end := add(xp, len) } lt(xp, end) {
                        xp := add(xp, 8)
                        mp := add(mp, 2)
                    } {
                        let sp := add(acc, shl(5, shr(240, mload(mp))))
                        let v := signextend(7, shr(192, calldataload(xp)))
                        mstore(sp, add(mload(sp), add(shl(64, v), 0x100000001)))
                    }
                }
                pos += len;
            } else {
                missing = abi.encodePacked(missing, uint16(k));
                assembly ("memory-safe") {
                    for { let end := add(mp, mul(cnt, 2)) } lt(mp, end) { mp := add(mp, 2) } {
                        let sp := add(acc, shl(5, shr(240, mload(mp))))
                        mstore(sp, add(mload(sp), 1))
                    }
                }
            }
            c0 += cnt;
        }
        require(pos == xs.length, BadLength());
    }

    /// @dev z_g = sum_g / submitted_g (truncated toward zero), previous z_g when none came;
    /// writes z into acc, returns z packed and Σ_g all_g (z_g − zPrev_g)².
    function _zUpdate(bytes calldata zPrev, uint256 ng, uint256 acc)
        private
        pure
        returns (bytes memory z, uint256 dSq)
    {
        z = new bytes(ng * 8 + 24); // 24 spare bytes: each store writes a whole word
        assembly ("memory-safe") {
            mstore(z, mul(ng, 8))
            let zp := add(z, 32)
            let pp := zPrev.offset
            for { let end := add(acc, shl(5, ng)) } lt(acc, end) {
                acc := add(acc, 32)
                zp := add(zp, 8)
                pp := add(pp, 8)
            } {
                let cw := mload(acc)
                let ns := and(shr(32, cw), 0xffffffff)
                let prev := signextend(7, shr(192, calldataload(pp)))
                let zg := prev
                if ns { zg := sdiv(sar(64, cw), ns) }
                mstore(acc, zg)
                let d := sub(zg, prev)
                dSq := add(dSq, mul(mul(d, d), and(cw, 0xffffffff)))
                mstore(zp, shl(192, zg))
            }
        }
    }

    /// @dev Second pass: Σ over submitted copies of (x_c − z_g)² (z now in acc).
    function _primal(bytes calldata xs, bytes memory blob, uint256 zs, uint256 subMask)
        private
        view
        returns (uint256 pSq)
    {
        uint256 nn = nNodes;
        uint256 total = nCopies;
        uint256 tag = uint256(round) + 1;
        uint256 pos;
        uint256 c0;
        for (uint256 k = 0; k < nn; ++k) {
            uint256 cnt = _count(blob, k, nn, total);
            bool sub = k < 256 ? (subMask >> k) & 1 == 1 : uint64(submission[k]) == tag;
            if (sub) {
                uint256 mp = _mapAt(blob, nn, c0);
                assembly ("memory-safe") {
                    let xp := add(xs.offset, pos)
                    for { let end := add(xp, mul(cnt, 8)) } lt(xp, end) {
                        xp := add(xp, 8)
                        mp := add(mp, 2)
                    } {
                        let d := sub(signextend(7, shr(192, calldataload(xp))), mload(add(zs, shl(5, shr(240, mload(mp))))))
                        pSq := add(pSq, mul(d, d))
                    }
                }
                pos += cnt * 8;
            }
            c0 += cnt;
        }
    }

    function _mapAt(bytes memory blob, uint256 nn, uint256 c0) private pure returns (uint256 ptr) {
        assembly ("memory-safe") {
            ptr := add(add(add(blob, 32), mul(nn, 4)), mul(c0, 2))
        }
    }

    function _count(bytes memory blob, uint256 k, uint256 nn, uint256 total) private pure returns (uint256) {
        uint256 a;
        uint256 b = total;
        assembly ("memory-safe") {
            a := shr(224, mload(add(add(blob, 32), mul(k, 4))))
        }
        if (k + 1 < nn) {
            assembly ("memory-safe") {
                b := shr(224, mload(add(add(blob, 32), mul(add(k, 1), 4))))
            }
        }
        return b - a;
    }

    function _loadMap() private view returns (bytes memory blob) {
        uint256 total = 4 * nNodes + 2 * nCopies;
        blob = new bytes(total);
        uint256 nc = mapChunks.length;
        for (uint256 i = 0; i < nc; ++i) {
            address p = mapChunks[i];
            uint256 start = i * CHUNK;
            uint256 len = total - start < CHUNK ? total - start : CHUNK;
            assembly ("memory-safe") {
                extcodecopy(p, add(add(blob, 32), start), 1, len)
            }
        }
    }

    /// @dev Deploy `len` bytes of `blob` from `start` as the code of a data contract
    /// (prefixed with STOP so it cannot be called).
    function _storeCode(bytes memory blob, uint256 start, uint256 len) private returns (address p) {
        bytes memory init = abi.encodePacked(
            hex"61", uint16(len + 1), hex"80600a3d393df3", hex"00", _slice(blob, start, len)
        );
        assembly ("memory-safe") {
            p := create(0, add(init, 32), mload(init))
        }
        require(p != address(0), BadSetup());
    }

    function _slice(bytes memory b, uint256 start, uint256 len) private pure returns (bytes memory out) {
        out = new bytes(len);
        assembly ("memory-safe") {
            mcopy(add(out, 32), add(add(b, 32), start), len)
        }
    }
}
