// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Registry} from "./Registry.sol";

/// @title Credit: the money of the local market (ERC-20, 9 decimals, 1 unit = 1e-9 EUR).
/// @notice Only an admin (the treasury) mints. An allowance of type(uint256).max is not spent
/// down, as in common ERC-20 practice, so a household approves the market once.
contract Credit {
    string public constant name = "VDG credit";
    string public constant symbol = "VDGC";
    uint8 public constant decimals = 9;

    Registry public immutable registry;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    error Unauthorized(address account, uint256 role);
    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    error InsufficientAllowance(address owner, address spender, uint256 allowance, uint256 needed);
    error ZeroAmount();
    error BadAddress();

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    constructor(Registry registry_) {
        registry = registry_;
    }

    function mint(address to, uint256 amount) external {
        require(registry.hasRole(msg.sender, 1), Unauthorized(msg.sender, 1));
        require(amount != 0, ZeroAmount());
        require(to != address(0), BadAddress());
        totalSupply += amount;
        unchecked {
            balanceOf[to] += amount; // bounded by totalSupply
        }
        emit Transfer(address(0), to, amount);
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        return true;
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        allowance[msg.sender][spender] = amount;
        emit Approval(msg.sender, spender, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        uint256 a = allowance[from][msg.sender];
        if (a != type(uint256).max) {
            require(a >= amount, InsufficientAllowance(from, msg.sender, a, amount));
            unchecked {
                allowance[from][msg.sender] = a - amount;
            }
        }
        _move(from, to, amount);
        return true;
    }

    function _move(address from, address to, uint256 amount) private {
        require(to != address(0), BadAddress());
        uint256 b = balanceOf[from];
        require(b >= amount, InsufficientBalance(from, b, amount));
        unchecked {
            balanceOf[from] = b - amount;
            balanceOf[to] += amount; // bounded by totalSupply
        }
        emit Transfer(from, to, amount);
    }
}
