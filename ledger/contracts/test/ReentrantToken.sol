// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title ReentrantToken: a hostile ERC-20 for security tests only (never deployed in use).
/// @notice On every transfer to the armed victim it calls back into `target` with `payload`
/// (e.g. the market's withdraw) and records whether the re-entry succeeded and its revert data.
contract ReentrantToken {
    mapping(address => uint256) public balanceOf;
    address public target;
    address public victim;
    bytes public payload;
    bool public attempted;
    bool public reentrySucceeded;
    bytes public reentryRevert;

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
    }

    function arm(address target_, address victim_, bytes calldata payload_) external {
        target = target_;
        victim = victim_;
        payload = payload_;
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        _move(msg.sender, to, amount);
        if (to == victim && !attempted) {
            attempted = true;
            (bool ok, bytes memory ret) = AttackerLike(victim).attack(target, payload);
            reentrySucceeded = ok;
            reentryRevert = ret;
        }
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) external returns (bool) {
        _move(from, to, amount);
        return true;
    }

    function _move(address from, address to, uint256 amount) private {
        require(balanceOf[from] >= amount, "balance");
        balanceOf[from] -= amount;
        balanceOf[to] += amount;
    }
}

interface AttackerLike {
    function attack(address target, bytes calldata payload) external returns (bool ok, bytes memory ret);
}

/// @title Attacker: a household account that is a contract and re-enters when paid.
contract Attacker {
    function call(address target, bytes calldata data) external returns (bytes memory) {
        (bool ok, bytes memory ret) = target.call(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }

    function attack(address target, bytes calldata payload) external returns (bool ok, bytes memory ret) {
        (ok, ret) = target.call(payload);
    }
}
