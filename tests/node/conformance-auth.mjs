// Preloaded (`node --import`) into the MCP conformance suite when it tests
// guardway: every HTTP request the suite makes to the origin in
// $CONFORMANCE_ORIGIN carries `Authorization: $CONFORMANCE_AUTHORIZATION`,
// the gateway's agent key. The suite has no option for headers; both its
// MCP client (global fetch) and its raw requests (undici) go through the
// global undici dispatcher installed here. Nothing else of a request is
// changed (Host and Origin stay as the suite set them).
import { Agent, setGlobalDispatcher } from 'undici';

const key = process.env.CONFORMANCE_AUTHORIZATION;
const origin = process.env.CONFORMANCE_ORIGIN;
if (!key || !origin) {
  throw new Error('conformance-auth.mjs needs CONFORMANCE_AUTHORIZATION and CONFORMANCE_ORIGIN');
}

function withAuthorization(headers) {
  if (Array.isArray(headers)) {
    return [...headers, 'authorization', key];
  }
  return { ...(headers ?? {}), authorization: key };
}

setGlobalDispatcher(
  new Agent().compose((dispatch) => (options, handler) => {
    const target = typeof options.origin === 'string' ? options.origin : options.origin?.origin;
    if (target !== origin) {
      return dispatch(options, handler);
    }
    return dispatch({ ...options, headers: withAuthorization(options.headers) }, handler);
  }),
);
