#!/usr/bin/env node
// The installed `edge-agent` command. Plain ES5 CommonJS on purpose: any Node
// parses it, so an old one can say in one line what it needs instead of crashing
// on syntax or on a missing API. With Node 22.18 or newer it runs the CLI:
// bin/edge-agent.ts beside it in a checkout of the repository (Node strips the
// types), else the compiled dist/bin/edge-agent.js (the npm package: Node does not
// strip types under node_modules, so `npm pack` compiles it; scripts/build.ts).
'use strict'

var NEED = [22, 18]
var version = process.versions && process.versions.node ? String(process.versions.node) : '0.0.0'
var parts = version.split('.')
var major = parseInt(parts[0], 10) || 0
var minor = parseInt(parts[1], 10) || 0

if (major < NEED[0] || (major === NEED[0] && minor < NEED[1])) {
  process.stderr.write('edge-agent needs Node ' + NEED.join('.') + ' or newer; this is Node v' + version +
    ' (' + process.execPath + '). Install Node 22 LTS or 24 LTS (https://nodejs.org/en/download) and run edge-agent with it.\n')
  process.exit(1)
}

var path = require('path')
var fs = require('fs')
var url = require('url')

var source = path.join(__dirname, 'edge-agent.ts')
var compiled = path.join(__dirname, '..', 'dist', 'bin', 'edge-agent.js')
var entry = fs.existsSync(source) ? source : compiled
if (!fs.existsSync(entry)) {
  process.stderr.write('edge-agent: ' + compiled + ' is missing; this package was packed without its build (npm pack runs scripts/build.ts)\n')
  process.exit(1)
}

// Node 22 marks node:sqlite experimental and says so on stderr at every command
// (Node 24 no longer does); the agent depends on it knowingly. Other warnings pass.
var emitWarning = process.emitWarning
process.emitWarning = function (warning, type) {
  var kind = warning && warning.name ? warning.name : (typeof type === 'string' ? type : (type && type.type))
  var text = typeof warning === 'string' ? warning : (warning && warning.message) || ''
  if (kind === 'ExperimentalWarning' && /SQLite/.test(text)) return
  return emitWarning.apply(process, arguments)
}

// import() written so that a parser without it (older than this check) never sees
// it: the CLI is an ES module with top-level await, which require() cannot load.
var load = new Function('specifier', 'return import(specifier)')
load(url.pathToFileURL(entry).href).catch(function (error) {
  process.stderr.write('edge-agent: ' + (error && error.stack ? error.stack : String(error)) + '\n')
  process.exit(1)
})
