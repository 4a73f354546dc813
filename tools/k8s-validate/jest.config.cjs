module.exports = require('../../jest.preset.cjs')(__dirname, 'k8s-validate');
