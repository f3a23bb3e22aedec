// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Registry} from "./Registry.sol";

/// @title EnergyToken: certificates of delivered energy (1 unit = 1 Wh), minted on proof of flow.
/// @notice The only way to create tokens is a DSO attestation of a meter's net export in a
/// delivery slot. Each (meter, slot) is attested once; its record (net export, negative for
/// import) stays readable for settlement. Tokens are transferable like an ERC-20; the supply
/// minted per slot is kept so certificates can be traced to their delivery slot.
contract EnergyToken {
    string public constant name = "VDG energy certificate";
    string public constant symbol = "VDGE";
    uint8 public constant decimals = 3; // 1 unit = 1 Wh = 0.001 kWh

    int256 public constant MAX_WH = type(int32).max;

    Registry public immutable registry;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(uint256 => uint256) public mintedInSlot;
    /// @dev keccak(meter, slot) -> (uint64(netWh) << 1) | 1
    mapping(bytes32 => uint256) private records;

    error Unauthorized(address account, uint256 role);
    error AlreadyAttested(address meter, uint256 slot);
    error UnknownMeter(address meter);
    error QuantityOutOfRange(int256 value);
    error LengthMismatch();
    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    error BadAddress();

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Attested(address indexed meter, uint256 indexed slot, address indexed household, int256 netWh);

    constructor(Registry registry_) {
        registry = registry_;
    }

    /// @notice DSO attests the metered net export (Wh, import negative) of meters in one slot
    /// and mints certificates for the exported energy to each meter's household.
    function attest(uint256 slot, address[] calldata meters, int256[] calldata netWh) external {
        require(registry.hasRole(msg.sender, 2), Unauthorized(msg.sender, 2));
        require(meters.length == netWh.length, LengthMismatch());
        uint256 minted;
        for (uint256 i = 0; i < meters.length; ++i) {
            address meter = meters[i];
            int256 e = netWh[i];
            require(e <= MAX_WH && e >= -MAX_WH, QuantityOutOfRange(e));
            address h = registry.householdOf(meter);
            require(h != address(0), UnknownMeter(meter));
            bytes32 k = keccak256(abi.encode(meter, slot));
            require(records[k] == 0, AlreadyAttested(meter, slot));
            records[k] = (uint256(uint64(int64(e))) << 1) | 1;
            emit Attested(meter, slot, h, e);
            if (e > 0) {
                uint256 u = uint256(e);
                balanceOf[h] += u;
                minted += u;
                emit Transfer(address(0), h, u);
            }
        }
        if (minted != 0) {
            totalSupply += minted;
            mintedInSlot[slot] += minted;
        }
    }

    /// @return attested whether the DSO attested (meter, slot); netWh its net export.
    function attestation(address meter, uint256 slot) external view returns (bool attested, int256 netWh) {
        uint256 r = records[keccak256(abi.encode(meter, slot))];
        return (r != 0, int256(int64(uint64(r >> 1))));
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        require(to != address(0), BadAddress());
        uint256 b = balanceOf[msg.sender];
        require(b >= amount, InsufficientBalance(msg.sender, b, amount));
        unchecked {
            balanceOf[msg.sender] = b - amount;
            balanceOf[to] += amount;
        }
        emit Transfer(msg.sender, to, amount);
        return true;
    }
}
