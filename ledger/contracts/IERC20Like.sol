// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title The part of ERC-20 the market needs from its money.
interface IERC20Like {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
    function balanceOf(address account) external view returns (uint256);
}
