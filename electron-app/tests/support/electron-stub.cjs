// A stand-in for the "electron" module, just enough for dist-electron/main/main.js
// to run under plain Node (the real binary cannot be downloaded here). It
// records what the main process asks of Electron so a test can check it.
const { EventEmitter } = require("node:events");

const state = {
  userData: null,
  appPath: null,
  quitCalls: 0,
  quitted: false,
  windows: [],
  handlers: new Map(),
  errorBoxes: [],
};

class App extends EventEmitter {
  isPackaged = false;
  getPath(name) {
    if (name !== "userData") throw new Error(`unexpected app.getPath(${name})`);
    return state.userData;
  }
  getAppPath() {
    return state.appPath;
  }
  requestSingleInstanceLock() {
    return true;
  }
  whenReady() {
    return Promise.resolve();
  }
  /** Like Electron: emits before-quit, and quits unless a listener prevents it. */
  quit() {
    state.quitCalls++;
    let prevented = false;
    this.emit("before-quit", { preventDefault: () => (prevented = true) });
    if (!prevented) state.quitted = true;
  }
}

class BrowserWindow extends EventEmitter {
  constructor(options) {
    super();
    this.options = options;
    this.loaded = null;
    this.webContents = Object.assign(new EventEmitter(), { setWindowOpenHandler: (h) => (this.openHandler = h) });
    state.windows.push(this);
  }
  loadFile(file) { this.loaded = { file }; return Promise.resolve(); }
  loadURL(url) { this.loaded = { url }; return Promise.resolve(); }
  show() {}
  focus() {}
  isDestroyed() { return false; }
}

module.exports = {
  app: new App(),
  BrowserWindow,
  ipcMain: { handle: (channel, handler) => state.handlers.set(channel, handler) },
  dialog: { showErrorBox: (title, body) => state.errorBoxes.push({ title, body }) },
  shell: { openExternal: () => Promise.resolve() },
  __state: state,
};
