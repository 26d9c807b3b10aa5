// A real OpenID Connect provider (npm oidc-provider, a certified implementation) on loopback,
// for the SSO tests: one confidential client (the hub), accounts with a "groups" claim read from
// a JSON file, the library's own login and consent pages (devInteractions: any password is
// accepted, as on a test IdP), refresh tokens, RP-initiated logout.
//
//   node tests/oidc/provider.mjs CONFIG.json
//   CONFIG: {port, client_id, client_secret, redirect_uris: [..], post_logout_redirect_uris: [..],
//            users_file: JSON {name: {groups: [..], email}} (read at every lookup, so a test can
//            change a user's groups), access_token_ttl}
import fs from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: config.client_id,
    client_secret: config.client_secret,
    redirect_uris: config.redirect_uris,
    post_logout_redirect_uris: config.post_logout_redirect_uris || [],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  async findAccount(ctx, id) {
    const users = JSON.parse(fs.readFileSync(config.users_file, 'utf8'));
    const user = users[id] || {};
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, preferred_username: id, name: user.name || id,
          email: user.email || `${id}@example.org`, groups: user.groups || [],
        };
      },
    };
  },
  claims: {
    openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email'], groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  ttl: { AccessToken: config.access_token_ttl || 3600, IdToken: 3600, RefreshToken: 86400,
         Grant: 86400, Session: 86400, Interaction: 600 },
  // a refresh token whenever the client may use one (the hub refreshes tokens)
  async issueRefreshToken(ctx, client) { return client.grantTypeAllowed('refresh_token'); },
  clockTolerance: 0, // expired means expired (the default tolerates 15 s of clock skew)
  cookies: { keys: [config.cookie_key || 'ink-test-cookie-key'] },
});
provider.proxy = false;
const server = provider.listen(config.port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
