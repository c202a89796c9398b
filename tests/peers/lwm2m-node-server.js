#!/usr/bin/env node
// A third-party LWM2M server for the integration tests: npm lwm2m-node-lib 1.4.0 (installed into
// .peers/node by scripts/install-peers), on 127.0.0.1:PORT.
//
//   node --no-warnings tests/peers/lwm2m-node-server.js PORT
//
// For each registration it runs, one after the other, on that device: Read /3/0/0, Discover /3/0,
// Write /1/0/3 = "45", Read /1/0/3 (read-back), Execute /1/0/8 (Registration Update Trigger) and
// Observe /3/0/13 (Current Time). Every fact is one JSON line on stdout:
//
//   {"ev":"listening","port":N}
//   {"ev":"register","ep":..,"lt":..,"lwm2m":..,"binding":..,"payload":..}
//   {"ev":"update","ep":..,"lt":..,"payload":..,"from":"ADDRESS:PORT"}
//   {"ev":"deregister","ep":..}
//   {"ev":"expired","ep":..}                           (lifetime ran out, no de-register)
//   {"ev":"read"|"discover"|"write"|"readback"|"execute"|"observe","ep":..,"path":..,
//    "ok":true,"value":..,"ms":..}                     (or "ok":false,"error":{..})
//   {"ev":"notify","ep":..,"path":..,"value":..}
//   {"ev":"error","where":..,"error":{..}}             (anything else that went wrong)
//   {"ev":"stopped"}
//
// Every line also has "t": milliseconds since the script started. Logs of the library go to
// stderr. It stops the server and exits when its stdin closes.
'use strict';

const path = require('path');
const { createRequire } = require('module');

const started = Date.now();

function emit(fact) {
    process.stdout.write(JSON.stringify(Object.assign({ ev: fact.ev, t: Date.now() - started }, fact)) + '\n');
}

function describe(error) {
    if (error === null || error === undefined) {
        return null;
    }
    if (typeof error !== 'object') {
        return { message: String(error) };
    }
    return { name: error.name, message: error.message, code: error.code };
}

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    process.stderr.write('usage: lwm2m-node-server.js PORT\n');
    process.exit(2);
}

// The library and its own copies of coap and logops (the same instances it uses).
const modules = process.env.LWM2M_NODE_MODULES ||
    path.resolve(__dirname, '..', '..', '.peers', 'node', 'node_modules');
const libRequire = createRequire(path.join(modules, 'lwm2m-node-lib', 'package.json'));
const coap = libRequire('coap');
const logops = libRequire('logops');
const lwm2m = libRequire('lwm2m-node-lib');
logops.setStream(process.stderr);

// Loopback only. The library calls listen(port) without an address (0.0.0.0)...
const serverProto = coap.createServer.prototype;
const originalListen = serverProto.listen;
serverProto.listen = function (listenPort, address, done) {
    if (typeof address === 'function' || address === undefined || address === null) {
        done = typeof address === 'function' ? address : done;
        address = '127.0.0.1';
    }
    return originalListen.call(this, listenPort, address, done);
};
// ...and sends each request from a new, unbound agent socket (which the kernel would bind to
// 0.0.0.0): bind those to 127.0.0.1 too. Sends wait in Node's queue until the bind is done.
const agentProto = coap.Agent.prototype;
const originalInit = agentProto._init;
agentProto._init = function (socket) {
    const had = this._sock;
    originalInit.call(this, socket);
    if (!had && !socket && this._sock && !this._opts.port) {
        this._sock.bind({ port: 0, address: '127.0.0.1' });
    }
};

const server = lwm2m.server;
const config = {
    port: port,
    lifetimeCheckInterval: 1000,
    udpWindow: 100,
    defaultType: 'Device',
    logLevel: 'FATAL',
    ipProtocol: 'udp4',
    serverProtocol: 'udp4',
    formats: [{ name: 'lightweightm2m/text', value: 1541 }],
    writeFormat: 'lightweightm2m/text',
    deviceRegistry: { type: 'memory' }
};

const WRITTEN = '45';
let serverInfo = null;
let stopping = false;

// Runs one operation; reports it, then goes on with `next` whatever the outcome.
function step(ev, ep, where, run, next) {
    const begin = Date.now();
    let done = false;
    try {
        run(function (error, value) {
            if (done) {
                emit({ ev: 'error', where: ev + ' ' + where, ep: ep, error: { message: 'callback called twice' } });
                return;
            }
            done = true;
            if (error) {
                emit({ ev: ev, ep: ep, path: where, ok: false, error: describe(error), ms: Date.now() - begin });
            } else {
                emit({ ev: ev, ep: ep, path: where, ok: true, value: value, ms: Date.now() - begin });
            }
            if (next && !stopping) {
                next();
            }
        });
    } catch (error) {
        emit({ ev: 'error', where: ev + ' ' + where, ep: ep, error: describe(error) });
    }
}

function manage(ep, id) {
    step('read', ep, '/3/0/0', (cb) => server.read(id, 3, 0, 0, cb), () =>
        step('discover', ep, '/3/0', (cb) => server.discover(id, 3, 0, cb), () =>
            step('write', ep, '/1/0/3', (cb) => server.write(id, 1, 0, 3, WRITTEN, cb), () =>
                step('readback', ep, '/1/0/3', (cb) => server.read(id, 1, 0, 3, cb), () =>
                    step('execute', ep, '/1/0/8', (cb) => server.execute(id, 1, 0, 8, null, cb), () =>
                        step('observe', ep, '/3/0/13', (cb) => server.observe(id, 3, 0, 13,
                            (value) => emit({ ev: 'notify', ep: ep, path: '/3/0/13', value: value }), cb),
                        null))))));
}

function onRegistration(ep, lifetime, version, binding, payload, callback) {
    emit({ ev: 'register', ep: ep, lt: lifetime, lwm2m: version, binding: binding, payload: payload });
    // Answer first (the library sends 2.01 when this callback runs), then manage the device.
    callback();
    setImmediate(() => {
        server.getDevice(ep, (error, device) => {
            if (error) {
                emit({ ev: 'error', where: 'getDevice', ep: ep, error: describe(error) });
            } else {
                manage(ep, device.id);
            }
        });
    });
}

// The library calls this with (device, payload, callback), not (device, callback) as its README says.
function onUpdate(device, payload, callback) {
    // The library has moved the registration to the address the Update came from.
    emit({ ev: 'update', ep: device.name, lt: device.lifetime, payload: payload,
        from: device.address + ':' + device.port });
    callback();
}

function onDeregistration(device, callback) {
    emit({ ev: 'deregister', ep: device.name });
    callback();
}

function stop(code) {
    if (stopping) {
        return;
    }
    stopping = true;
    const exit = () => {
        emit({ ev: 'stopped' });
        process.exit(code);
    };
    // Bounded: exit even if the library never calls back.
    setTimeout(exit, 2000).unref();
    if (serverInfo) {
        server.stop(serverInfo, (error) => {
            if (error) {
                emit({ ev: 'error', where: 'stop', error: describe(error) });
            }
            exit();
        });
    } else {
        exit();
    }
}

process.on('uncaughtException', (error) => {
    emit({ ev: 'error', where: 'uncaught', error: describe(error), stack: String(error && error.stack) });
});

server.start(config, (error, info) => {
    if (error) {
        emit({ ev: 'error', where: 'start', error: describe(error) });
        process.exit(1);
    }
    serverInfo = info;
    server.setHandler(serverInfo, 'registration', onRegistration);
    server.setHandler(serverInfo, 'updateRegistration', onUpdate);
    server.setHandler(serverInfo, 'unregistration', onDeregistration);
    // Setting 'unregistration' re-arms the lifetime checker with an undefined interval (a scan
    // every millisecond): re-arm it at the configured interval, reporting expiries.
    server.getRegistry().checkLifetime(config.lifetimeCheckInterval, (device, cb) => {
        emit({ ev: 'expired', ep: device.name });
        cb();
    });
    emit({ ev: 'listening', port: port });
});

process.stdin.on('end', () => stop(0));
process.stdin.on('error', () => stop(0));
process.stdin.resume();
