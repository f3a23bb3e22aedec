// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Registry} from "./Registry.sol";
import {IERC20Like} from "./IERC20Like.sol";

/// @title Billing: Münsing's S2 — schedules against meter readings signed by the meter's key.
/// @notice The aggregator stores each household's scheduled net export per period with the
/// period's energy price and deviation penalty. A reading is (household, period, net export Wh)
/// signed by the household's meter key (EIP-191 over this contract, the chain id and the
/// reading), relayed by anyone, accepted once per household and period. The bill moves Credit:
/// the household pays price x import and penalty x |reading − schedule|; the treasury pays the
/// household price x export. Both approved this contract beforehand.
contract Billing {
    uint256 private constant AGGREGATOR = 8;
    int256 private constant MAX_WH = type(int32).max;

    Registry public immutable registry;
    IERC20Like public immutable credit;
    address public immutable treasury;

    /// @dev keccak(household, period) -> int32 scheduleWh | uint64 price << 32 | uint64 penalty << 96 | 1 << 160
    mapping(bytes32 => uint256) private schedules;
    /// @dev keccak(household, period) -> billed
    mapping(bytes32 => bool) public billed;

    error Unauthorized(address account, uint256 role);
    error LengthMismatch();
    error QuantityOutOfRange(int256 value);
    error NoSchedule(address household, uint256 period);
    error AlreadyBilled(address household, uint256 period);
    error BadSignature(address household);
    error NoMeter(address household);

    event Scheduled(uint256 indexed period, address indexed household, int256 scheduleWh);
    event Billed(
        uint256 indexed period, address indexed household, int256 readingWh, int256 scheduleWh, int256 amountNano
    );

    constructor(Registry registry_, IERC20Like credit_, address treasury_) {
        registry = registry_;
        credit = credit_;
        treasury = treasury_;
    }

    function postSchedule(
        uint256 period,
        address[] calldata hh,
        int256[] calldata scheduleWh,
        uint64 priceNanoPerWh,
        uint64 penaltyNanoPerWh
    ) external {
        require(registry.hasRole(msg.sender, AGGREGATOR), Unauthorized(msg.sender, AGGREGATOR));
        require(hh.length == scheduleWh.length, LengthMismatch());
        for (uint256 i = 0; i < hh.length; ++i) {
            int256 e = scheduleWh[i];
            require(e <= MAX_WH && e >= -MAX_WH, QuantityOutOfRange(e));
            schedules[keccak256(abi.encode(hh[i], period))] = uint256(uint32(int32(e)))
                | (uint256(priceNanoPerWh) << 32) | (uint256(penaltyNanoPerWh) << 96) | (1 << 160);
            emit Scheduled(period, hh[i], e);
        }
    }

    /// @notice The digest a meter signs (EIP-191 personal message of the reading's hash).
    function readingDigest(address household, uint256 period, int256 readingWh) public view returns (bytes32) {
        bytes32 inner = keccak256(abi.encode(address(this), block.chainid, household, period, readingWh));
        return keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", inner));
    }

    function bill(address household, uint256 period, int256 readingWh, uint8 v, bytes32 r, bytes32 s)
        external
        returns (int256 amountNano)
    {
        require(readingWh <= MAX_WH && readingWh >= -MAX_WH, QuantityOutOfRange(readingWh));
        bytes32 key = keccak256(abi.encode(household, period));
        require(!billed[key], AlreadyBilled(household, period));
        uint256 w = schedules[key];
        require(w != 0, NoSchedule(household, period));
        address meter = registry.meterOf(household);
        require(meter != address(0), NoMeter(household));
        address signer = ecrecover(readingDigest(household, period, readingWh), v, r, s);
        require(signer == meter, BadSignature(household));
        billed[key] = true;
        int256 sched = int256(int32(uint32(w)));
        int256 price = int256(uint256(uint64(w >> 32)));
        int256 pen = int256(uint256(uint64(w >> 96)));
        int256 dev = readingWh > sched ? readingWh - sched : sched - readingWh;
        // positive: household pays the treasury; negative: the treasury pays the household
        amountNano = -readingWh * price + dev * pen;
        emit Billed(period, household, readingWh, sched, amountNano);
        if (amountNano > 0) _move(household, treasury, uint256(amountNano));
        else if (amountNano < 0) _move(treasury, household, uint256(-amountNano));
    }

    function _move(address from, address to, uint256 amount) private {
        bool ok = credit.transferFrom(from, to, amount);
        require(ok);
    }
}
