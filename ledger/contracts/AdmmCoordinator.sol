// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Registry} from "./Registry.sol";

/// @title AdmmCoordinator: the consensus-ADMM aggregator step (Münsing's S1, B-DER steps 3–5).
/// @notice Node k owns a local coupling vector whose entry j copies global variable
/// map[offset_k + j]. Values are int64 fixed point (scale set by the client), big-endian.
/// A node submits its vector in calldata; the contract keeps only a hash of it, chained over
/// segments of SEGMENT values (keccak(round ‖ x[0:S]), then keccak(h ‖ x[S:2S]), ...), so that a
/// vector can be checked across several transactions.
/// Without pages (set at setup) the aggregator closes a round in one transaction, closeRound,
/// with every submitted vector and the previous z in calldata (checked against the stored
/// hashes and the hash of z), everything computed in memory: cheapest for small problems, but
/// its gas grows with the problem. With pages no transaction's gas grows with the population:
///   closePage(xs, count): the next `count` copies in node order (a page ends at a node's end or
///     at a segment boundary within a node), with the submitted values among them in calldata;
///     each node's values are checked against its stored hash when its last value is paged in,
///     and added into the per-global accumulators in storage (sum, submitted and total copy
///     counts) and into Σ x_c²; the nodes that did not submit are emitted;
///   finalisePage(count, ...): once every node is paged in, the next `count` global variables:
///     z_g = sum_g / submitted_g (truncated toward zero; previous z_g when none was submitted),
///     stored and emitted; the last page emits the residual sums
///   primalSq = Σ_submitted copies (x_c − z_g)² = Σ x_c² − Σ_g (2 z_g sum_g − submitted_g z_g²),
///   dualSq = Σ_all copies (z_g − zPrev_g)²  (exact in integers).
/// Storage per round: one word per submitting node (192 bits of the submission's hash and the
/// round tag), one word per global variable (accumulators tagged with the round, and z), the
/// round header.
contract AdmmCoordinator {
    uint256 private constant AGGREGATOR = 8;
    uint256 private constant CHUNK = 24000;
    /// @dev values per segment of a submission's hash chain
    uint256 public constant SEGMENT = 64;
    /// @dev global variables at most: uint32 indices in the copy map
    uint256 public constant MAX_GLOBAL = 1 << 32;
    /// @dev storage slot of global g's word is ACC_BASE + g: sum int128 | z int64 | tag uint16 (round + 1,
    /// wrapping: every global with copies is written each round) | submitted uint24 | all uint24
    uint256 private constant ACC_BASE = 0x100000000000000000000000000000000; // 2^128

    Registry public immutable registry;

    uint256 public nGlobal;
    uint256 public nNodes;
    uint256 public nCopies;
    /// @dev code-stored chunks of the copy map: per node uint32 offset, then uint32 per copy
    address[] private mapChunks;
    /// @dev account -> (node + 1) << 64 | offset << 32 | count
    mapping(address => uint256) public nodeWordOf;
    mapping(uint256 => address) public nodeAccount;

    uint64 public round;
    uint64 public deadline;
    bool public isOpen;
    bool public converged;
    /// @dev rounds closed in pages (closePage, finalisePage), else in one closeRound
    bool public paged;
    /// @dev set by the first close page: no submission is taken after it
    bool public closing;
    /// @dev one-transaction close: hash of z (z itself is in the ZPage event)
    bytes32 public zHash;
    /// @dev the next copy and its node to page in, then the next global variable to finalise
    uint32 public nextCopy;
    uint32 public nextNode;
    uint32 public nextGlobal;
    /// @dev the hash chain of a submitted node whose values a page left unfinished
    bytes32 private partialHash;
    uint256 public primalSq;
    uint256 public dualSq;
    /// @dev the open round's running sums: Σ x_c² less the finalised terms, and dualSq
    int256 private primalAcc;
    uint256 private dualAcc;
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
    error BadPage(uint256 next, uint256 count);
    error SubmissionMismatch(uint256 node);
    error ZMismatch();
    error WrongMode(bool paged);

    event SetUp(uint256 nGlobal, uint256 nNodes, uint256 nCopies);
    event RoundOpened(uint256 indexed round, uint256 deadline);
    /// @dev the vector itself is in the transaction's calldata (submit(round, x))
    event Submitted(uint256 indexed round, uint256 indexed node);
    /// @dev nodes [fromNode, toNode) paged in; `missing` are those that did not submit (uint16 each)
    event PageClosed(uint256 indexed round, uint256 fromNode, uint256 toNode, bytes missing);
    /// @dev z of globals [fromGlobal, fromGlobal + z.length / 8), int64 each
    event ZPage(uint256 indexed round, uint256 fromGlobal, bytes z);
    event RoundClosed(uint256 indexed round, uint256 primalSq, uint256 dualSq, bool converged);

    modifier onlyAggregator() {
        require(registry.hasRole(msg.sender, AGGREGATOR), Unauthorized(msg.sender, AGGREGATOR));
        _;
    }

    constructor(Registry registry_) {
        registry = registry_;
    }

    /// @param nGlobal_ number of global variables (at most MAX_GLOBAL).
    /// @param counts number of coupling entries of each node.
    /// @param map uint32 global index of every copy, nodes in order (big-endian).
    /// @param accounts the account each node submits from.
    /// @param paged_ close rounds in pages (closePage, finalisePage) instead of one closeRound.
    function setup(
        uint256 nGlobal_,
        uint32[] calldata counts,
        bytes calldata map,
        address[] calldata accounts,
        bool paged_
    ) external onlyAggregator {
        require(nNodes == 0, AlreadySetUp());
        uint256 n = counts.length;
        require(
            n > 0 && n < 65536 && n == accounts.length && nGlobal_ > 0 && nGlobal_ <= MAX_GLOBAL
                && map.length < 2 << 24 && map.length > 0,
            BadSetup()
        );
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
        require(map.length == 4 * off, BadLength());
        for (uint256 c = 0; c < off; ++c) {
            uint256 g;
            assembly ("memory-safe") {
                g := shr(224, calldataload(add(map.offset, mul(c, 4))))
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
        paged = paged_;
        if (!paged_) zHash = keccak256(new bytes(nGlobal_ * 8));
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
        require(isOpen && !closing, RoundNotOpen(round_));
        require(round_ == round, WrongRound(round, round_));
        require(block.timestamp <= deadline, PastDeadline(round_));
        uint256 w = nodeWordOf[msg.sender];
        require(w != 0, UnknownNode(msg.sender));
        uint256 node = (w >> 64) - 1;
        require(x.length == 8 * (w & 0xffffffff), BadLength());
        uint256 tag = uint256(round_) + 1;
        require(uint64(submission[node]) != tag, AlreadySubmitted(node));
        bytes32 h = _hashFrom(round_, 0, 0, x);
        submission[node] = (uint256(h) & ~uint256(0xffffffffffffffff)) | tag;
        emit Submitted(round_, node);
    }

    function submitted(uint256 node) public view returns (bool) {
        return uint64(submission[node]) == uint256(round) + 1 && isOpen;
    }

    /// @notice Close the round in one transaction (a setup without pages): z-update and residual
    /// sums over the submitted vectors, in memory.
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
        require(!paged, WrongMode(paged));
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
        (bytes memory missing, uint256 subMask) = _accumulateAll(xs, blob, acc);
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
        emit PageClosed(r, 0, nNodes, missing);
        emit ZPage(r, 0, z);
        emit RoundClosed(r, pSq, dSq, conv);
    }

    /// @dev First pass: check each submitted vector against its stored hash and add it into acc;
    /// count the copies of missing nodes too. Returns the missing nodes (uint16 each) and, for
    /// the second pass, a bit per node (nodes beyond 255 are looked up again).
    function _accumulateAll(bytes calldata xs, bytes memory blob, uint256 acc)
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
                bytes32 h = _hashFrom(r, 0, 0, xs[pos:pos + len]);
                require(uint256(h) >> 64 == w >> 64, SubmissionMismatch(k));
                assembly ("memory-safe") {
                    let xp := add(xs.offset, pos)
                    for { let end := add(xp, len) } lt(xp, end) {
                        xp := add(xp, 8)
                        mp := add(mp, 4)
                    } {
                        let sp := add(acc, shl(5, shr(224, mload(mp))))
                        let v := signextend(7, shr(192, calldataload(xp)))
                        mstore(sp, add(mload(sp), add(shl(64, v), 0x100000001)))
                    }
                }
                pos += len;
            } else {
                missing = abi.encodePacked(missing, uint16(k));
                assembly ("memory-safe") {
                    for { let end := add(mp, mul(cnt, 4)) } lt(mp, end) { mp := add(mp, 4) } {
                        let sp := add(acc, shl(5, shr(224, mload(mp))))
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
                        mp := add(mp, 4)
                    } {
                        let d := sub(signextend(7, shr(192, calldataload(xp))), mload(add(zs, shl(5, shr(224, mload(mp))))))
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
            ptr := add(add(add(blob, 32), mul(nn, 4)), mul(c0, 4))
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

    /// @notice Page in the next `count` copies (node order): check and accumulate the values.
    /// @param xs the page's values of the nodes that submitted, in node order, concatenated.
    function closePage(bytes calldata xs, uint256 count) external onlyAggregator {
        require(isOpen, RoundNotOpen(round));
        uint256 nn = nNodes;
        uint256 total = nCopies;
        uint256 c = nextCopy;
        uint256 cEnd = c + count;
        require(paged, WrongMode(paged));
        require(count > 0 && cEnd <= total, BadPage(c, count));
        closing = true;
        bytes memory map = _loadRange(4 * nn + 4 * c, 4 * count);
        uint256 mp;
        assembly ("memory-safe") {
            mp := add(map, 32)
        }
        uint64 r = round;
        bytes memory missing;
        uint256 pos;
        uint256 sq;
        uint256 k = nextNode;
        uint256 k0 = k;
        bytes32 h = partialHash;
        while (k < nn) {
            uint256 ok = _offset(k);
            uint256 ok1 = k + 1 < nn ? _offset(k + 1) : total;
            if (c == cEnd && ok1 > c) break;
            uint256 end = ok1 < cEnd ? ok1 : cEnd;
            require(end == ok1 || (end - ok) % SEGMENT == 0, BadPage(c, count));
            uint256 w = submission[k];
            uint256 len;
            if (uint64(w) == uint256(r) + 1) {
                len = 8 * (end - c);
                require(pos + len <= xs.length, BadLength());
                h = _hashFrom(r, h, c - ok, xs[pos:pos + len]);
                require(end < ok1 || uint256(h) >> 64 == w >> 64, SubmissionMismatch(k));
            } else if (c == ok) {
                missing = abi.encodePacked(missing, uint16(k));
            }
            uint256 xp;
            assembly ("memory-safe") {
                xp := add(xs.offset, pos)
            }
            uint256 pageSq;
            (mp, pageSq) = _accumulate(mp, end - c, xp, len, r);
            sq += pageSq;
            pos += len;
            c = end;
            if (end < ok1) {
                partialHash = h;
                break;
            }
            ++k;
        }
        require(pos == xs.length, BadLength());
        primalAcc += int256(sq);
        nextCopy = uint32(c);
        nextNode = uint32(k);
        emit PageClosed(r, k0, k, missing);
    }

    /// @dev Add m copies into their globals' words (map entries from mp; values from calldata at
    /// xp when len is nonzero, else only counted); returns the map position after them and Σ x².
    function _accumulate(uint256 mp, uint256 m, uint256 xp, uint256 len, uint64 r)
        private
        returns (uint256, uint256 sq)
    {
        uint256 t16 = (uint256(r) + 1) & 0xffff;
        assembly ("memory-safe") {
            for { let end := add(mp, mul(m, 4)) } lt(mp, end) { mp := add(mp, 4) } {
                let slot := add(ACC_BASE, shr(224, mload(mp)))
                let a := sload(slot)
                if iszero(eq(and(shr(48, a), 0xffff), t16)) {
                    // first copy of g this round: keep z, zero the sums, set the tag
                    a := or(and(a, shl(64, 0xffffffffffffffff)), shl(48, t16))
                }
                a := add(a, 1) // all copies
                if len {
                    let v := signextend(7, shr(192, calldataload(xp)))
                    // sum += v (two's complement in the top 128 bits), submitted += 1
                    a := add(a, add(shl(128, v), shl(24, 1)))
                    sq := add(sq, mul(v, v))
                    xp := add(xp, 8)
                }
                sstore(slot, a)
            }
        }
        return (mp, sq);
    }

    /// @dev The hash chain of a submission continued over `part`, which starts at value `j`
    /// (a multiple of SEGMENT) of the node's vector; `h` is the chain so far (unused when j = 0).
    function _hashFrom(uint64 r, bytes32 h, uint256 j, bytes calldata part) private pure returns (bytes32) {
        uint256 seg = SEGMENT * 8;
        uint256 p;
        if (j == 0) {
            p = part.length < seg ? part.length : seg;
            assembly ("memory-safe") {
                let buf := mload(0x40) // scratch past the free pointer, not kept
                mstore(buf, shl(192, r))
                calldatacopy(add(buf, 8), part.offset, p)
                h := keccak256(buf, add(p, 8))
            }
        }
        while (p < part.length) {
            uint256 l = part.length - p < seg ? part.length - p : seg;
            assembly ("memory-safe") {
                let buf := mload(0x40)
                mstore(buf, h)
                calldatacopy(add(buf, 32), add(part.offset, p), l)
                h := keccak256(buf, add(l, 32))
            }
            p += l;
        }
        return h;
    }

    function _offset(uint256 k) private view returns (uint256) {
        return _word32(_loadRange(4 * k, 4), 0);
    }

    /// @notice z-update of the next `count` global variables, once every node is paged in; the
    /// page that reaches the last global closes the round.
    /// @param epsPrimalSq converged when primalSq <= epsPrimalSq and rhoSq * dualSq <= epsDualSqScaled.
    function finalisePage(uint256 count, uint256 epsPrimalSq, uint256 rhoSq, uint256 epsDualSqScaled)
        external
        onlyAggregator
    {
        require(isOpen, RoundNotOpen(round));
        uint256 ng = nGlobal;
        uint256 g0 = nextGlobal;
        require(paged, WrongMode(paged));
        require(nextNode == nNodes && count > 0 && g0 + count <= ng, BadPage(g0, count));
        uint256 t16 = (uint256(round) + 1) & 0xffff;
        bytes memory z = new bytes(count * 8 + 24); // 24 spare bytes: each store writes a whole word
        int256 pTerm;
        uint256 dSq;
        assembly ("memory-safe") {
            mstore(z, mul(count, 8))
            let zp := add(z, 32)
            for { let g := g0 } lt(g, add(g0, count)) { g := add(g, 1) } {
                let slot := add(ACC_BASE, g)
                let a := sload(slot)
                let prev := signextend(7, shr(64, a))
                let zg := prev
                if eq(and(shr(48, a), 0xffff), t16) {
                    let sum := sar(128, a)
                    let ns := and(shr(24, a), 0xffffff)
                    if ns {
                        zg := sdiv(sum, ns)
                        // Σ_c (x_c − z)² = Σ x_c² − 2 z sum + ns z²
                        pTerm := add(pTerm, sub(mul(ns, mul(zg, zg)), mul(2, mul(zg, sum))))
                    }
                    let d := sub(zg, prev)
                    dSq := add(dSq, mul(mul(d, d), and(a, 0xffffff)))
                }
                // keep the tag and counts; z replaced
                sstore(slot, or(and(a, not(shl(64, 0xffffffffffffffff))), shl(64, and(zg, 0xffffffffffffffff))))
                mstore(zp, shl(192, zg))
                zp := add(zp, 8)
            }
        }
        uint64 r = round;
        emit ZPage(r, g0, z);
        int256 pAcc = primalAcc + pTerm;
        uint256 dAcc = dualAcc + dSq;
        if (g0 + count < ng) {
            primalAcc = pAcc;
            dualAcc = dAcc;
            nextGlobal = uint32(g0 + count);
            return;
        }
        uint256 pSq = uint256(pAcc);
        bool conv = pSq <= epsPrimalSq && rhoSq * dAcc <= epsDualSqScaled;
        primalSq = pSq;
        dualSq = dAcc;
        converged = conv;
        primalAcc = 0;
        dualAcc = 0;
        nextCopy = 0;
        nextNode = 0;
        nextGlobal = 0;
        closing = false;
        isOpen = false;
        round = r + 1;
        emit RoundClosed(r, pSq, dAcc, conv);
    }

    /// @dev the big-endian uint32 at byte 4·i of b
    function _word32(bytes memory b, uint256 i) private pure returns (uint256 v) {
        assembly ("memory-safe") {
            v := shr(224, mload(add(add(b, 32), mul(i, 4))))
        }
    }

    /// @dev bytes [start, start + len) of the copy map, read from the chunks that hold them
    function _loadRange(uint256 start, uint256 len) private view returns (bytes memory out) {
        out = new bytes(len);
        if (len == 0) return out;
        uint256 end = start + len;
        for (uint256 i = start / CHUNK; i * CHUNK < end; ++i) {
            address p = mapChunks[i];
            uint256 lo = i * CHUNK > start ? i * CHUNK : start;
            uint256 hi = (i + 1) * CHUNK < end ? (i + 1) * CHUNK : end;
            assembly ("memory-safe") {
                extcodecopy(p, add(add(out, 32), sub(lo, start)), add(1, sub(lo, mul(i, CHUNK))), sub(hi, lo))
            }
        }
    }

    function _loadMap() private view returns (bytes memory blob) {
        uint256 total = 4 * nNodes + 4 * nCopies;
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
