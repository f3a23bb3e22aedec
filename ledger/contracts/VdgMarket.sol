// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Registry} from "./Registry.sol";
import {IERC20Like} from "./IERC20Like.sol";
import {EnergyToken} from "./EnergyToken.sol";

/// @title VdgMarket: sealed-bid VDG sessions with escrow, Huang MDA clearing and settlement.
/// @notice Encodings (all big-endian, packed):
///  - order vector of a household: nSlots entries of [int32 qtyWh, uint32 priceMicroEurPerKwh];
///    qty > 0 buys, qty < 0 sells, qty = 0 is no order in that slot.
///  - household list: 20-byte addresses in reveal order.
///  - sorted book: per slot [uint16 nBuyers, uint16 nSellers, nBuyers x uint16, nSellers x uint16]
///    household indices; buyers by price descending, sellers ascending, ties by index ascending.
///  - prices: per slot [uint32 buyerPrice, uint32 sellerPrice] (zero when nothing trades).
///  - results: per household nSlots x int32 cleared Wh (bought > 0, sold < 0).
/// Money is Credit with 9 decimals: Wh x µEUR/kWh = 1e-9 EUR, so payments are exact integers.
contract VdgMarket {
    uint256 private constant DSO = 2;
    uint256 private constant AUCTIONEER = 4;
    uint256 private constant HOUSEHOLD = 16;

    enum State {
        None,
        Open,
        Cleared,
        Settled
    }

    struct Session {
        uint32 startSlot;
        uint16 nSlots;
        uint40 commitEnd;
        uint40 revealEnd;
        State state;
        uint64 penaltyNanoPerWh; // all of the above share one storage word
        bytes32 revealAcc;
        bytes32 resultHash;
    }

    Registry public immutable registry;
    IERC20Like public immutable credit;
    EnergyToken public immutable energy;
    address public immutable treasury;

    uint256 public sessionCount;
    mapping(uint256 => Session) public sessions;
    /// @dev one word per household and session: the commitment (a hash, whose top 56 bits are
    /// never all zero) until the reveal, then (escrow << 1) | 1 with escrow < 2**199.
    mapping(uint256 => mapping(address => uint256)) public sealOf;
    mapping(address => uint256) public owed;
    bool private transient locked;

    error Unauthorized(address account, uint256 role);
    error BadSession(uint256 session);
    error BadGates();
    error CommitClosed(uint256 session);
    error AlreadyCommitted(address household);
    error RevealNotOpen(uint256 session);
    error RevealClosed(uint256 session);
    error NotCommitted(address household);
    error AlreadyRevealed(address household);
    error CommitMismatch(address household);
    error BadLength();
    error EmptyOrder();
    error QuantityOutOfRange(uint256 slot, int256 qtyWh);
    error ClearingNotOpen(uint256 session);
    error BookMismatch();
    error BadSort(uint256 slot, uint256 position);
    error BadCount(uint256 slot);
    error NotCleared(uint256 session);
    error AlreadySettled(uint256 session);
    error ResultMismatch();
    error NotAttested(address household, uint256 slot);
    error NothingOwed(address account);
    error ReentrantCall();
    error TransferFailed();

    event SessionOpened(
        uint256 indexed session, uint256 startSlot, uint256 nSlots, uint256 commitEnd, uint256 revealEnd
    );
    event Committed(uint256 indexed session, address indexed household);
    event Revealed(uint256 indexed session, address indexed household, bytes orders, uint256 escrow);
    event SlotCleared(
        uint256 indexed session,
        uint256 indexed slot,
        uint256 buyerPrice,
        uint256 sellerPrice,
        uint256 volumeWh,
        uint256 nBuyers,
        uint256 nSellers
    );
    event Cleared(uint256 indexed session, bytes households, bytes prices, bytes results);
    event Settled(uint256 indexed session, address indexed household, uint256 escrow, uint256 owed);
    event Withdrawn(address indexed account, uint256 amount);

    modifier only(uint256 role) {
        require(registry.hasRole(msg.sender, role), Unauthorized(msg.sender, role));
        _;
    }

    modifier nonReentrant() {
        require(!locked, ReentrantCall());
        locked = true;
        _;
        locked = false;
    }

    constructor(Registry registry_, IERC20Like credit_, EnergyToken energy_, address treasury_) {
        registry = registry_;
        credit = credit_;
        energy = energy_;
        treasury = treasury_;
    }

    // ----------------------------------------------------------------------------- sessions

    function openSession(
        uint32 startSlot,
        uint16 nSlots,
        uint40 commitEnd,
        uint40 revealEnd,
        uint64 penaltyNanoPerWh
    ) external only(AUCTIONEER) returns (uint256 sid) {
        require(nSlots > 0 && block.timestamp < commitEnd && commitEnd < revealEnd, BadGates());
        sid = ++sessionCount;
        Session storage s = sessions[sid];
        s.startSlot = startSlot;
        s.nSlots = nSlots;
        s.commitEnd = commitEnd;
        s.revealEnd = revealEnd;
        s.penaltyNanoPerWh = penaltyNanoPerWh;
        s.state = State.Open;
        emit SessionOpened(sid, startSlot, nSlots, commitEnd, revealEnd);
    }

    /// @notice Seal a whole order vector: h = keccak256(abi.encodePacked(session, household, orders, salt)).
    function commit(uint256 sid, bytes32 h) external only(HOUSEHOLD) {
        Session storage s = sessions[sid];
        require(s.state == State.Open, BadSession(sid));
        require(block.timestamp < s.commitEnd, CommitClosed(sid));
        require(sealOf[sid][msg.sender] == 0, AlreadyCommitted(msg.sender));
        require(uint256(h) >> 200 != 0, NotCommitted(msg.sender));
        sealOf[sid][msg.sender] = uint256(h);
        emit Committed(sid, msg.sender);
    }

    /// @notice Open the sealed vector; escrows Σ buy qty·price plus a shortfall bond of
    /// Σ sell qty·penalty in Credit (the household approved the market beforehand).
    function reveal(uint256 sid, bytes calldata orders, bytes32 salt) external nonReentrant {
        Session storage s = sessions[sid];
        require(s.state == State.Open, BadSession(sid));
        require(block.timestamp >= s.commitEnd, RevealNotOpen(sid));
        require(block.timestamp < s.revealEnd, RevealClosed(sid));
        uint256 c = sealOf[sid][msg.sender];
        require(c != 0, NotCommitted(msg.sender));
        require(c >> 200 != 0, AlreadyRevealed(msg.sender));
        require(
            uint256(keccak256(abi.encodePacked(sid, msg.sender, orders, salt))) == c, CommitMismatch(msg.sender)
        );
        uint256 n = s.nSlots;
        require(orders.length == n * 8, BadLength());
        uint256 escrow;
        uint256 pen = s.penaltyNanoPerWh;
        bool any;
        for (uint256 t = 0; t < n; ++t) {
            (int256 q, uint256 p) = _order(orders, t);
            require(q != type(int32).min, QuantityOutOfRange(t, q));
            if (q > 0) escrow += uint256(q) * p;
            else if (q < 0) escrow += uint256(-q) * pen;
            if (q != 0) any = true;
        }
        require(any, EmptyOrder());
        sealOf[sid][msg.sender] = (escrow << 1) | 1; // escrow <= 24·2**64 per slot, far below 2**199
        s.revealAcc = keccak256(abi.encodePacked(s.revealAcc, msg.sender, keccak256(orders)));
        emit Revealed(sid, msg.sender, orders, escrow);
        if (escrow != 0) _pull(msg.sender, escrow);
    }

    function escrowOf(uint256 sid, address household) external view returns (bool revealed, uint256 escrow) {
        uint256 w = sealOf[sid][household];
        return (w != 0 && w >> 200 == 0, w >> 1);
    }

    // ----------------------------------------------------------------------------- clearing

    /// @notice Clear every slot of a session with Huang's multi-unit double auction. The
    /// auctioneer supplies the revealed book and its sort; the contract checks both in O(n)
    /// (book against the reveal accumulator, sort by order and count) and computes the trade.
    function clear(uint256 sid, bytes calldata hh, bytes calldata orders, bytes calldata sorted)
        external
        only(AUCTIONEER)
    {
        Session storage s = sessions[sid];
        require(s.state == State.Open && block.timestamp >= s.revealEnd, ClearingNotOpen(sid));
        uint256 n = hh.length / 20;
        uint256 nSlots = s.nSlots;
        uint256 vlen = nSlots * 8;
        require(hh.length == n * 20 && orders.length == n * vlen, BadLength());
        {
            bytes32 acc;
            for (uint256 i = 0; i < n; ++i) {
                bytes32 vh = keccak256(orders[i * vlen:(i + 1) * vlen]);
                acc = keccak256(abi.encodePacked(acc, bytes20(hh[i * 20:(i + 1) * 20]), vh));
            }
            require(acc == s.revealAcc, BookMismatch());
        }
        bytes memory prices = new bytes(nSlots * 8);
        bytes memory results = new bytes(n * nSlots * 4);
        uint256 pos;
        for (uint256 t = 0; t < nSlots; ++t) {
            pos = _clearSlot(sid, t, n, nSlots, orders, sorted, pos, prices, results);
        }
        require(pos == sorted.length, BadLength());
        s.resultHash = keccak256(abi.encodePacked(hh, prices, results));
        s.state = State.Cleared;
        emit Cleared(sid, hh, prices, results);
    }

    struct Slot {
        uint256 t;
        uint256 nb;
        uint256 ns;
        uint256 bOff; // calldata offset (in `sorted`) of buyer indices
        uint256 sOff;
        uint256 nSlots;
    }

    function _clearSlot(
        uint256 sid,
        uint256 t,
        uint256 n,
        uint256 nSlots,
        bytes calldata orders,
        bytes calldata sorted,
        uint256 pos,
        bytes memory prices,
        bytes memory results
    ) private returns (uint256) {
        Slot memory sl;
        sl.t = t;
        sl.nSlots = nSlots;
        sl.nb = _u16(sorted, pos);
        sl.ns = _u16(sorted, pos + 2);
        sl.bOff = pos + 4;
        sl.sOff = sl.bOff + 2 * sl.nb;
        pos = sl.sOff + 2 * sl.ns;
        require(pos <= sorted.length, BadLength());
        _checkSides(sl, n, orders, sorted);
        // Walk the demand and supply curves to the break-even pair (K, L).
        uint256 K = type(uint256).max;
        uint256 L;
        {
            uint256 i;
            uint256 j;
            uint256 rb;
            uint256 rs;
            if (sl.nb > 0 && sl.ns > 0) {
                (rb,) = _side(orders, sorted, sl, true, 0);
                (rs,) = _side(orders, sorted, sl, false, 0);
            }
            while (i < sl.nb && j < sl.ns) {
                (, uint256 pb) = _side(orders, sorted, sl, true, i);
                (, uint256 ps) = _side(orders, sorted, sl, false, j);
                if (pb < ps) break;
                K = i;
                L = j;
                uint256 m = rb < rs ? rb : rs;
                rb -= m;
                rs -= m;
                if (rb == 0 && ++i < sl.nb) (rb,) = _side(orders, sorted, sl, true, i);
                if (rs == 0 && ++j < sl.ns) (rs,) = _side(orders, sorted, sl, false, j);
            }
        }
        if (K == type(uint256).max || K == 0 || L == 0) {
            emit SlotCleared(sid, t, 0, 0, 0, 0, 0);
            return pos;
        }
        (, uint256 priceB) = _side(orders, sorted, sl, true, K);
        (, uint256 priceS) = _side(orders, sorted, sl, false, L);
        uint256 qb;
        uint256 qs;
        for (uint256 k = 0; k < K; ++k) {
            (uint256 q,) = _side(orders, sorted, sl, true, k);
            qb += q;
        }
        for (uint256 k = 0; k < L; ++k) {
            (uint256 q,) = _side(orders, sorted, sl, false, k);
            qs += q;
        }
        uint256 volume = qb < qs ? qb : qs;
        _assign(orders, sorted, sl, true, K, qb, volume, n, results);
        _assign(orders, sorted, sl, false, L, qs, volume, n, results);
        assembly ("memory-safe") {
            let w := or(shl(224, priceB), shl(192, priceS))
            let ptr := add(add(prices, 32), mul(t, 8))
            mstore(ptr, or(w, and(mload(ptr), not(shl(192, 0xffffffffffffffff)))))
        }
        emit SlotCleared(sid, t, priceB, priceS, volume, K, L);
        return pos;
    }

    /// @dev Sort order, side and completeness of the supplied buyer and seller lists of one slot.
    function _checkSides(Slot memory sl, uint256 n, bytes calldata orders, bytes calldata sorted) private pure {
        uint256 buyers;
        uint256 sellers;
        for (uint256 i = 0; i < n; ++i) {
            (int256 q,) = _order(orders, i * sl.nSlots + sl.t);
            if (q > 0) ++buyers;
            else if (q < 0) ++sellers;
        }
        require(buyers == sl.nb && sellers == sl.ns, BadCount(sl.t));
        uint256 prevP = type(uint256).max;
        uint256 prevI;
        for (uint256 k = 0; k < sl.nb; ++k) {
            uint256 idx = _u16(sorted, sl.bOff + 2 * k);
            require(idx < n, BadSort(sl.t, k));
            (int256 q, uint256 p) = _order(orders, idx * sl.nSlots + sl.t);
            require(q > 0 && (p < prevP || (p == prevP && (k == 0 || idx > prevI))), BadSort(sl.t, k));
            prevP = p;
            prevI = idx;
        }
        prevP = 0;
        for (uint256 k = 0; k < sl.ns; ++k) {
            uint256 idx = _u16(sorted, sl.sOff + 2 * k);
            require(idx < n, BadSort(sl.t, sl.nb + k));
            (int256 q, uint256 p) = _order(orders, idx * sl.nSlots + sl.t);
            require(q < 0 && (k == 0 || p > prevP || (p == prevP && idx > prevI)), BadSort(sl.t, sl.nb + k));
            prevP = p;
            prevI = idx;
        }
    }

    /// @dev Quantity (absolute) and price of the k-th buyer or seller of a slot.
    function _side(bytes calldata orders, bytes calldata sorted, Slot memory sl, bool buy, uint256 k)
        private
        pure
        returns (uint256 q, uint256 p)
    {
        uint256 idx = _u16(sorted, (buy ? sl.bOff : sl.sOff) + 2 * k);
        int256 sq;
        (sq, p) = _order(orders, idx * sl.nSlots + sl.t);
        q = uint256(sq < 0 ? -sq : sq);
    }

    /// @dev Give the first `m` participants of a side their quantity; when the side is long
    /// (total > volume) reduce every quantity by the same r, the largest integer with
    /// Σ max(q − r, 0) >= volume (members with q <= r drop out), and take the E = Σ − volume
    /// leftover Wh one each from the members still trading with the largest household index.
    /// This is the rule of market/auction.py (ids ordered like household indices).
    function _assign(
        bytes calldata orders,
        bytes calldata sorted,
        Slot memory sl,
        bool buy,
        uint256 m,
        uint256 total,
        uint256 volume,
        uint256 n,
        bytes memory results
    ) private pure {
        uint256 r;
        bytes memory lose; // lose[idx] == 1: this household gives up one more Wh
        if (total > volume) {
            uint256 lo;
            uint256 hi;
            for (uint256 k = 0; k < m; ++k) {
                (uint256 q,) = _side(orders, sorted, sl, buy, k);
                if (q > hi) hi = q;
            }
            // invariant: S(lo) >= volume > S(hi), S(x) = Σ max(q − x, 0); volume > 0
            while (lo + 1 < hi) {
                uint256 mid = (lo + hi) / 2;
                uint256 sum;
                for (uint256 k = 0; k < m; ++k) {
                    (uint256 q,) = _side(orders, sorted, sl, buy, k);
                    if (q > mid) sum += q - mid;
                }
                if (sum >= volume) lo = mid;
                else hi = mid;
            }
            r = lo;
            uint256 s;
            lose = new bytes(n);
            for (uint256 k = 0; k < m; ++k) {
                (uint256 q,) = _side(orders, sorted, sl, buy, k);
                if (q > r) {
                    s += q - r;
                    lose[_u16(sorted, (buy ? sl.bOff : sl.sOff) + 2 * k)] = 0x01;
                }
            }
            uint256 extra = s - volume;
            for (uint256 idx = n; extra > 0 && idx > 0; --idx) {
                if (lose[idx - 1] != 0) {
                    lose[idx - 1] = 0x02;
                    --extra;
                }
            }
        }
        for (uint256 k = 0; k < m; ++k) {
            (uint256 q,) = _side(orders, sorted, sl, buy, k);
            uint256 idx = _u16(sorted, (buy ? sl.bOff : sl.sOff) + 2 * k);
            uint256 c = q;
            if (total > volume) {
                c = q > r ? q - r : 0;
                if (c != 0 && lose[idx] == 0x02) --c;
            }
            uint256 word = buy ? c : uint256(uint32(-int32(int256(c))));
            uint256 entry = idx * sl.nSlots + sl.t;
            assembly ("memory-safe") {
                let ptr := add(add(results, 32), mul(entry, 4))
                mstore(ptr, or(shl(224, word), and(mload(ptr), not(shl(224, 0xffffffff)))))
            }
        }
    }

    // ----------------------------------------------------------------------------- settlement

    /// @notice Settle a cleared session against the DSO's attestations: buyers pay the
    /// buyer price for what they bought; sellers get the seller price for what they delivered,
    /// and pay the session penalty per Wh short out of their bond; unused escrow is refunded.
    /// What is left (trade surplus, payments for energy not delivered, penalties) goes to the
    /// treasury. Amounts are credited to `owed` and withdrawn by their owners.
    function settle(uint256 sid, bytes calldata hh, bytes calldata prices, bytes calldata results)
        external
        only(DSO)
    {
        Session storage s = sessions[sid];
        if (s.state == State.Settled) revert AlreadySettled(sid);
        require(s.state == State.Cleared, NotCleared(sid));
        uint256 n = hh.length / 20;
        // fixed lengths make the packed hash's split into (hh, prices, results) unique
        require(
            hh.length == n * 20 && prices.length == uint256(s.nSlots) * 8
                && results.length == n * uint256(s.nSlots) * 4,
            BadLength()
        );
        require(keccak256(abi.encodePacked(hh, prices, results)) == s.resultHash, ResultMismatch());
        Terms memory tm = Terms(s.nSlots, s.penaltyNanoPerWh, s.startSlot);
        uint256 paidOut;
        uint256 escrowTotal;
        s.state = State.Settled;
        for (uint256 i = 0; i < n; ++i) {
            (uint256 due, uint256 escrow) =
                _settleOne(sid, tm, address(bytes20(hh[i * 20:(i + 1) * 20])), i, prices, results);
            paidOut += due;
            escrowTotal += escrow;
        }
        owed[treasury] += escrowTotal - paidOut;
    }

    struct Terms {
        uint256 nSlots;
        uint256 penalty;
        uint256 startSlot;
    }

    function _settleOne(
        uint256 sid,
        Terms memory tm,
        address h,
        uint256 i,
        bytes calldata prices,
        bytes calldata results
    ) private returns (uint256 due, uint256 escrow) {
        escrow = sealOf[sid][h] >> 1;
        address meter;
        uint256 debit;
        uint256 gain;
        for (uint256 t = 0; t < tm.nSlots; ++t) {
            int256 c = int256(int32(uint32(_u32(results, (i * tm.nSlots + t) * 4))));
            if (c > 0) {
                debit += uint256(c) * _u32(prices, t * 8);
            } else if (c < 0) {
                if (meter == address(0)) meter = registry.meterOf(h);
                (bool ok, int256 net) = energy.attestation(meter, tm.startSlot + t);
                require(ok, NotAttested(h, tm.startSlot + t));
                uint256 sold = uint256(-c);
                uint256 delivered = net > 0 ? uint256(net) : 0;
                if (delivered > sold) delivered = sold;
                gain += delivered * _u32(prices, t * 8 + 4);
                debit += (sold - delivered) * tm.penalty;
            }
        }
        due = escrow + gain - debit;
        owed[h] += due;
        emit Settled(sid, h, escrow, due);
    }

    /// @notice Pull what settlement credited to the caller.
    function withdraw() external nonReentrant {
        uint256 a = owed[msg.sender];
        require(a != 0, NothingOwed(msg.sender));
        owed[msg.sender] = 0;
        emit Withdrawn(msg.sender, a);
        _push(msg.sender, a);
    }

    // ----------------------------------------------------------------------------- helpers

    function _pull(address from, uint256 amount) private {
        (bool ok, bytes memory ret) =
            address(credit).call(abi.encodeCall(IERC20Like.transferFrom, (from, address(this), amount)));
        _checkTransfer(ok, ret);
    }

    function _push(address to, uint256 amount) private {
        (bool ok, bytes memory ret) = address(credit).call(abi.encodeCall(IERC20Like.transfer, (to, amount)));
        _checkTransfer(ok, ret);
    }

    function _checkTransfer(bool ok, bytes memory ret) private pure {
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(ret, 32), mload(ret)) // bubble the token's own reason
            }
        }
        require(ret.length == 0 || abi.decode(ret, (bool)), TransferFailed());
    }

    function _order(bytes calldata orders, uint256 entry) private pure returns (int256 q, uint256 p) {
        assembly ("memory-safe") {
            let w := calldataload(add(orders.offset, mul(entry, 8)))
            q := signextend(3, shr(224, w))
            p := and(shr(192, w), 0xffffffff)
        }
    }

    function _u16(bytes calldata b, uint256 off) private pure returns (uint256 v) {
        assembly ("memory-safe") {
            v := shr(240, calldataload(add(b.offset, off)))
        }
    }

    function _u32(bytes calldata b, uint256 off) private pure returns (uint256 v) {
        assembly ("memory-safe") {
            v := shr(224, calldataload(add(b.offset, off)))
        }
    }
}
