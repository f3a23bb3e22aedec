// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Registry} from "./Registry.sol";

/// @title FleetCoordinator: Couraud et al.'s battery-fleet contract (eqs. 10–12).
/// @notice The aggregator registers households and posts its time series per market interval
/// t: SoC recommendation SoC_t,A, contracted export Ec_t and battery state S_t. At every
/// communication time a fleet step carries each household's SoC and energy exported since the
/// last step (HEMS readings relayed in one transaction), accumulates the interval's net
/// export, computes the weights
///   wi_k = Wi_k / Σ Wi,  Wi_k = 1 − SoC_k;
///   we_k = We_k / Σ We,  We_k = SoC_k if (Ee_k ≥ 0 and SoC_k ≥ SoC_t,A) else 0,
/// and the remaining export RE_t,A = Ec_t − Σ_k Ee_t,k, and emits them to the households.
/// Encodings: SoC in 1e-4 (uint16 ≤ 10000), energy in Wh (int32), weights in 1e-6 (uint32).
contract FleetCoordinator {
    uint256 private constant AGGREGATOR = 8;
    uint256 private constant HOUSEHOLD = 16;
    uint256 private constant SOC_ONE = 10000;
    uint256 private constant W_ONE = 1000000;

    Registry public immutable registry;
    address[] public households;
    mapping(address => uint256) public indexOf; // index + 1
    /// @dev interval -> uint16 socA | int64 ecWh << 16 | int8 state << 80 | 1 << 88
    mapping(uint256 => uint256) private series;
    /// @dev current interval, steps in it and the running Σ Ee_t,k (one word)
    uint64 public interval;
    uint32 public stepInInterval;
    int128 public exportedWh;

    error Unauthorized(address account, uint256 role);
    error AlreadyRegistered(address household);
    error NoSeries(uint256 interval);
    error BadLength();
    error OutOfRange(uint256 index);
    error SocAboveOne();
    error IntervalPassed(uint256 interval);

    event HouseholdRegistered(address indexed household, uint256 index);
    event SeriesSet(uint256 indexed firstInterval, uint256 count);
    event FleetStep(
        uint256 indexed interval, uint256 step, int256 remainingExportWh, int256 state, bytes weights
    );

    modifier onlyAggregator() {
        require(registry.hasRole(msg.sender, AGGREGATOR), Unauthorized(msg.sender, AGGREGATOR));
        _;
    }

    constructor(Registry registry_) {
        registry = registry_;
    }

    function registerHousehold(address h) external onlyAggregator {
        require(registry.hasRole(h, HOUSEHOLD), Unauthorized(h, HOUSEHOLD));
        require(indexOf[h] == 0, AlreadyRegistered(h));
        households.push(h);
        indexOf[h] = households.length;
        emit HouseholdRegistered(h, households.length - 1);
    }

    function fleetSize() external view returns (uint256) {
        return households.length;
    }

    /// @param packed per interval [uint16 socA (1e-4), int32 ecWh, int8 state].
    function setSeries(uint256 firstInterval, bytes calldata packed) external onlyAggregator {
        require(packed.length % 7 == 0, BadLength());
        uint256 n = packed.length / 7;
        for (uint256 i = 0; i < n; ++i) {
            uint256 soc;
            int256 ec;
            int256 st;
            assembly ("memory-safe") {
                let w := calldataload(add(packed.offset, mul(i, 7)))
                soc := shr(240, w)
                ec := signextend(3, shr(208, w))
                st := signextend(0, shr(200, w))
            }
            require(soc <= SOC_ONE, OutOfRange(i));
            series[firstInterval + i] =
                soc | (uint256(uint64(int64(ec))) << 16) | (uint256(uint8(int8(st))) << 80) | (1 << 88);
        }
        emit SeriesSet(firstInterval, n);
    }

    function seriesOf(uint256 t) external view returns (bool set, uint256 socA, int256 ecWh, int256 state) {
        uint256 w = series[t];
        return (w >> 88 != 0, w & 0xffff, int256(int64(uint64(w >> 16))), int256(int8(uint8(w >> 80))));
    }

    /// @notice One fleet step of interval t with every household's update in registration order.
    /// @param updates per household [uint16 soc (1e-4), int32 eeWh since the last step].
    function fleetStep(uint64 t, bytes calldata updates) external onlyAggregator {
        uint256 n = households.length;
        require(updates.length == n * 6, BadLength());
        uint256 sw = series[t];
        require(sw >> 88 != 0, NoSeries(t));
        uint256 socA = sw & 0xffff;
        int256 ec = int256(int64(uint64(sw >> 16)));
        uint64 cur = interval;
        require(t >= cur, IntervalPassed(t));
        int256 acc = t == cur ? int256(exportedWh) : int256(0);
        uint32 step = t == cur ? stepInInterval + 1 : 1;
        (uint256 sumWe, uint256 sumWi, int256 sumEe) = _sums(updates, n, socA);
        acc += sumEe;
        bytes memory weights = _weights(updates, n, socA, sumWe, sumWi);
        interval = t;
        stepInInterval = step;
        exportedWh = int128(acc);
        emit FleetStep(t, step, ec - acc, int256(int8(uint8(sw >> 80))), weights);
    }

    /// @dev Σ We, Σ Wi and Σ Ee over the packed updates; reverts on a SoC above 1.
    function _sums(bytes calldata u, uint256 n, uint256 socA)
        private
        pure
        returns (uint256 sumWe, uint256 sumWi, int256 sumEe)
    {
        bool bad;
        assembly ("memory-safe") {
            let p := u.offset
            for { let end := add(p, mul(n, 6)) } lt(p, end) { p := add(p, 6) } {
                let w := calldataload(p)
                let soc := shr(240, w)
                let ee := signextend(3, shr(208, w))
                bad := or(bad, gt(soc, SOC_ONE))
                sumEe := add(sumEe, ee)
                sumWi := add(sumWi, sub(SOC_ONE, soc))
                if and(iszero(slt(ee, 0)), iszero(lt(soc, socA))) { sumWe := add(sumWe, soc) }
            }
        }
        require(!bad, SocAboveOne());
    }

    /// @dev we_k = We_k / Σ We and wi_k = Wi_k / Σ Wi in 1e-6, packed [uint32 we, uint32 wi].
    function _weights(bytes calldata u, uint256 n, uint256 socA, uint256 sumWe, uint256 sumWi)
        private
        pure
        returns (bytes memory weights)
    {
        weights = new bytes(n * 8 + 24); // spare bytes: each store writes a whole word
        assembly ("memory-safe") {
            mstore(weights, mul(n, 8))
            let out := add(weights, 32)
            let p := u.offset
            for { let end := add(p, mul(n, 6)) } lt(p, end) {
                p := add(p, 6)
                out := add(out, 8)
            } {
                let w := calldataload(p)
                let soc := shr(240, w)
                let ee := signextend(3, shr(208, w))
                let we := 0
                if and(and(iszero(slt(ee, 0)), iszero(lt(soc, socA))), gt(sumWe, 0)) {
                    we := div(mul(soc, W_ONE), sumWe)
                }
                let wi := 0
                if sumWi { wi := div(mul(sub(SOC_ONE, soc), W_ONE), sumWi) }
                mstore(out, or(shl(224, we), shl(192, wi)))
            }
        }
    }
}
