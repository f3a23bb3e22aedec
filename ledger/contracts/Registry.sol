// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title Registry of roles and meters on the permissioned chain.
/// @notice Roles are bits of one word per account. The deployer is the first admin. Each
/// household has at most one meter key and each meter key belongs to one household.
contract Registry {
    uint256 public constant ADMIN = 1;
    uint256 public constant DSO = 2;
    uint256 public constant AUCTIONEER = 4;
    uint256 public constant AGGREGATOR = 8;
    uint256 public constant HOUSEHOLD = 16;
    uint256 public constant OPERATOR = 32; // contracts allowed to move escrow (the market)

    mapping(address => uint256) public rolesOf;
    mapping(address => address) public meterOf;
    mapping(address => address) public householdOf;

    error Unauthorized(address account, uint256 role);
    error BadAddress();
    error MeterTaken(address meter);

    event RolesChanged(address indexed account, uint256 roles);
    event MeterRegistered(address indexed household, address indexed meter);

    constructor() {
        rolesOf[msg.sender] = ADMIN;
        emit RolesChanged(msg.sender, ADMIN);
    }

    function hasRole(address account, uint256 role) external view returns (bool) {
        return rolesOf[account] & role == role;
    }

    /// @notice Reverts with Unauthorized unless `account` holds every bit of `role`.
    function requireRole(address account, uint256 role) external view {
        require(rolesOf[account] & role == role, Unauthorized(account, role));
    }

    function grant(address account, uint256 roles) external {
        require(rolesOf[msg.sender] & ADMIN != 0, Unauthorized(msg.sender, ADMIN));
        require(account != address(0), BadAddress());
        uint256 r = rolesOf[account] | roles;
        rolesOf[account] = r;
        emit RolesChanged(account, r);
    }

    /// @notice Grants one role to many accounts (household onboarding in one transaction).
    function grantMany(address[] calldata accounts, uint256 roles) external {
        require(rolesOf[msg.sender] & ADMIN != 0, Unauthorized(msg.sender, ADMIN));
        for (uint256 i = 0; i < accounts.length; ++i) {
            address a = accounts[i];
            require(a != address(0), BadAddress());
            uint256 r = rolesOf[a] | roles;
            rolesOf[a] = r;
            emit RolesChanged(a, r);
        }
    }

    function revoke(address account, uint256 roles) external {
        require(rolesOf[msg.sender] & ADMIN != 0, Unauthorized(msg.sender, ADMIN));
        uint256 r = rolesOf[account] & ~roles;
        rolesOf[account] = r;
        emit RolesChanged(account, r);
    }

    /// @notice The DSO binds a meter key to a registered household (one each way).
    function registerMeter(address household, address meter) external {
        require(rolesOf[msg.sender] & (DSO | ADMIN) != 0, Unauthorized(msg.sender, DSO));
        require(rolesOf[household] & HOUSEHOLD != 0, Unauthorized(household, HOUSEHOLD));
        require(meter != address(0), BadAddress());
        require(householdOf[meter] == address(0) && meterOf[household] == address(0), MeterTaken(meter));
        meterOf[household] = meter;
        householdOf[meter] = household;
        emit MeterRegistered(household, meter);
    }
}
